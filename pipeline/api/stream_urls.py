"""Routes of the progress stream (SSE)."""

from django.urls import path  # noqa: F401

urlpatterns: list = []
