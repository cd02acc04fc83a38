"""Dashboard routes of projects: the list at ``/``, create, rename, delete, files, diff."""

from django.urls import path

from . import pages

urlpatterns = [
    path("", pages.home, name="page-home"),
    path("app/projects/new", pages.project_create_page, name="page-project-create"),
    path(
        "app/projects/<int:project_id>/rename",
        pages.project_rename_page,
        name="page-project-rename",
    ),
    path(
        "app/projects/<int:project_id>/delete",
        pages.project_delete_page,
        name="page-project-delete",
    ),
    path(
        "app/projects/<int:project_id>/files", pages.project_files_page, name="page-project-files"
    ),
    path("app/projects/<int:project_id>/diff", pages.project_diff_page, name="page-project-diff"),
]
