"""Routes of the artifact files: tree, content, zip, diff."""

from django.urls import path  # noqa: F401

urlpatterns: list = []
