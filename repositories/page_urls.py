"""Dashboard routes of a project's forge settings."""

from django.urls import path

from . import pages

urlpatterns = [
    path("app/projects/<int:project_id>/forge", pages.forge_settings_page, name="page-forge"),
    path(
        "app/projects/<int:project_id>/forge/remove",
        pages.forge_remove_page,
        name="page-forge-remove",
    ),
]
