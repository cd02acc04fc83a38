"""WebSocket routes of this app."""

from django.urls import path

from .consumers import TerminalConsumer

websocket_urlpatterns = [
    path("ws/terminal/<int:project_id>/", TerminalConsumer.as_asgi()),
]
