"""``GET /admin/providers``: the providers' health for staff."""

from typing import Any

from django.conf import settings
from django.utils.module_loading import import_string
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from ..selectors import providers_status


class ProvidersStatusView(APIView):
    """Providers and models, circuit state, calls, errors, p50 / p95 latency (staff only).

    Who counts as staff here (with MFA passed) is the accounts part's rule, wired in by the
    ``STAFF_API_PERMISSION_CLASSES`` setting so this app imports nothing of ours.
    """

    def get_permissions(self) -> list[Any]:
        return [import_string(path)() for path in settings.STAFF_API_PERMISSION_CLASSES]

    @extend_schema(responses=OpenApiTypes.OBJECT, tags=["providers"])
    def get(self, request: Request) -> Response:
        return Response(providers_status())
