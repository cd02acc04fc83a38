"""``GET /api/schema/``: the OpenAPI schema, generated once and then served as it is.

drf-spectacular's generation is not thread-safe (it patches view classes while it walks
them; drf-spectacular issues 1123 and 1368): under ASGI, where each request runs in a
thread of its own, concurrent requests made it answer 500 now and then. The routes do not
change while a process runs, so the schema is generated on first use under a lock, once
per API version and language, and every later request serves that document.
"""

import threading
from typing import Any

from django.utils import translation
from drf_spectacular.views import SpectacularAPIView
from rest_framework.request import Request
from rest_framework.response import Response

# Distinct (version, language) documents kept; past this (odd ?version= / ?lang= values)
# a document is still generated under the lock, just not kept.
MAX_KEPT = 16


class SchemaView(SpectacularAPIView):
    """The OpenAPI 3 schema, generated once per version and language under a lock."""

    _lock = threading.Lock()
    _documents: dict[tuple[str | None, str | None], Any] = {}

    def _get_schema_response(self, request: Request) -> Response:
        version = self.api_version or request.version or self._get_version_parameter(request)
        key = (version, translation.get_language())
        with self._lock:
            document = self._documents.get(key)
            if document is None:
                generator = self.generator_class(
                    urlconf=self.urlconf, api_version=version, patterns=self.patterns
                )
                document = generator.get_schema(request=request, public=self.serve_public)
                if len(self._documents) < MAX_KEPT:
                    self._documents[key] = document
        filename = self._get_filename(request, version)
        return Response(
            data=document, headers={"Content-Disposition": f'inline; filename="{filename}"'}
        )

    @classmethod
    def forget(cls) -> None:
        """Drop the kept documents (tests that change the routes)."""
        with cls._lock:
            cls._documents.clear()
