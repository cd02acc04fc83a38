"""Terminal routes (the API has no prefix)."""

from django.urls import path

from .views import TerminalTicketView

urlpatterns = [
    path(
        "projects/<int:project_id>/terminal/ticket",
        TerminalTicketView.as_view(),
        name="terminal-ticket",
    ),
]
