"""Dashboard routes of the terminal: the tab and the ticket it asks for."""

from django.urls import path

from . import pages

urlpatterns = [
    path("app/projects/<int:project_id>/terminal", pages.terminal_page, name="page-terminal"),
    path(
        "app/projects/<int:project_id>/terminal/ticket",
        pages.terminal_ticket,
        name="page-terminal-ticket",
    ),
]
