"""Routes of the artifact files: tree, content, zip, diff."""

from django.urls import path

from .files_views import ProjectDiffApi, ProjectDownloadApi, ProjectFileContentApi, ProjectFilesApi

urlpatterns = [
    path("projects/<int:project_id>/files", ProjectFilesApi.as_view(), name="project-files"),
    path(
        "projects/<int:project_id>/files/<path:path>",
        ProjectFileContentApi.as_view(),
        name="project-file-content",
    ),
    path(
        "projects/<int:project_id>/download", ProjectDownloadApi.as_view(), name="project-download"
    ),
    path("projects/<int:project_id>/diff", ProjectDiffApi.as_view(), name="project-diff"),
]
