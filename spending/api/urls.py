"""Spending API routes, mounted under ``/auth/`` next to the account's own."""

from django.urls import path

from . import views

urlpatterns = [
    path("spend", views.SpendHistoryApi.as_view(), name="auth-spend"),
]
