"""Top-level routes. Each app's ``api/urls.py`` holds its own paths (the API has no prefix).

Django tries the patterns in order, and every include mounted at ``""`` that does not match
costs a regular expression per pattern plus a copy of its list of tried patterns: the API
routes (``projects...``, ``runs...``) come first so the calls made most often resolve after
a handful of patterns. No two groups can match the same path (the pages live under ``app/``,
``account``, ``signup``, ``signout`` and ``/``), so the order changes no route's meaning.
"""

from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularSwaggerSplitView

from . import ops
from .schema import SchemaView

urlpatterns = [
    path("health", ops.health, name="health"),
    path("metrics", ops.metrics, name="metrics"),
    path("", include("projects.api.urls")),
    path("", include("projects.api.files_urls")),
    path("", include("pipeline.api.urls")),
    path("", include("pipeline.api.stream_urls")),
    path("", include("pipeline.delivery.urls")),
    path("", include("terminal.api.urls")),
    path("", include("repositories.api.urls")),
    path("", include("webhooks.api.urls")),
    path("auth/", include("accounts.api.urls")),
    path("auth/", include("spending.api.urls")),
    path("api/schema/", SchemaView.as_view(permission_classes=[]), name="schema"),
    # Swagger UI under the site's CSP: its assets from drf-spectacular-sidecar (pinned, served
    # here), its start-up script from ``?script``, its styles from files.
    path(
        "api/docs/",
        SpectacularSwaggerSplitView.as_view(
            url_name="schema", permission_classes=[], template_name="api/swagger_ui.html"
        ),
        name="docs",
    ),
    # Dashboard pages (session sign-in with the MFA step); ``/`` is the projects list.
    path("", include("accounts.urls")),
    path("", include("projects.page_urls")),
    path("", include("pipeline.page_urls")),
    path("", include("repositories.page_urls")),
    path("", include("terminal.page_urls")),
    path("", include("webhooks.page_urls")),
    path("", include("providers.api.urls")),
    path("admin/", admin.site.urls),
]
