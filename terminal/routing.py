"""WebSocket routes of this app."""

from django.urls import path  # noqa: F401

websocket_urlpatterns: list = []
