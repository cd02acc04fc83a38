"""``GET /auth/spend``: what the signed-in user spent, per day and model, from the ledger."""

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from ..selectors import spend_days_validate, spend_history_for_user
from .serializers import SpendHistoryOutput


class SpendHistoryApi(APIView):
    """The user's spending over the last ``days`` days (default 30): per day, per model."""

    @extend_schema(
        parameters=[OpenApiParameter("days", OpenApiTypes.INT, description="1 to 366")],
        responses=SpendHistoryOutput,
    )
    def get(self, request: Request) -> Response:
        days = spend_days_validate(request.query_params.get("days"))
        history = spend_history_for_user(user=request.user, days=days)
        return Response(SpendHistoryOutput(history).data)
