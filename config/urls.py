"""Top-level routes. Each app's ``api/urls.py`` holds its own paths (the API has no prefix)."""

from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularSwaggerView

from . import ops
from .schema import SchemaView

urlpatterns = [
    path("health", ops.health, name="health"),
    path("metrics", ops.metrics, name="metrics"),
    path("api/schema/", SchemaView.as_view(permission_classes=[]), name="schema"),
    path(
        "api/docs/",
        SpectacularSwaggerView.as_view(url_name="schema", permission_classes=[]),
        name="docs",
    ),
    path("auth/", include("accounts.api.urls")),
    # Dashboard pages (session sign-in with the MFA step); ``/`` is the projects list.
    path("", include("accounts.urls")),
    path("", include("projects.page_urls")),
    path("", include("pipeline.page_urls")),
    path("", include("terminal.page_urls")),
    path("", include("providers.api.urls")),
    path("admin/", admin.site.urls),
    path("", include("projects.api.urls")),
    path("", include("projects.api.files_urls")),
    path("", include("pipeline.api.urls")),
    path("", include("pipeline.api.stream_urls")),
    path("", include("terminal.api.urls")),
]
