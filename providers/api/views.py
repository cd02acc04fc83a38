"""``GET /admin/providers``: the providers' health for staff."""

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework.permissions import IsAdminUser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from ..selectors import providers_status


class ProvidersStatusView(APIView):
    """Providers and models, circuit state, calls, errors, p50 / p95 latency (staff only)."""

    permission_classes = [IsAdminUser]

    @extend_schema(responses=OpenApiTypes.OBJECT, tags=["providers"])
    def get(self, request: Request) -> Response:
        return Response(providers_status())
