"""Webhook endpoints and their deliveries: parse, call one service or selector, serialize."""

from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from projects.selectors import project_get_for_user

from ..selectors import (
    delivery_get_for_endpoint,
    delivery_list_for_endpoint,
    endpoint_get_for_user,
    endpoint_list_for_project,
)
from ..services import delivery_redeliver, endpoint_create, endpoint_delete
from .serializers import (
    EndpointCreatedSerializer,
    EndpointInputSerializer,
    EndpointOutputSerializer,
    WebhookDeliveryOutputSerializer,
)


class ProjectWebhookListApi(APIView):
    """The project's webhook endpoints; POST adds one (its secret is in this answer only)."""

    @extend_schema(responses=EndpointOutputSerializer(many=True))
    def get(self, request: Request, project_id: int) -> Response:
        project = project_get_for_user(user=request.user, project_id=project_id)
        endpoints = endpoint_list_for_project(project=project)
        return Response(EndpointOutputSerializer(endpoints, many=True).data)

    @extend_schema(request=EndpointInputSerializer, responses={201: EndpointCreatedSerializer})
    def post(self, request: Request, project_id: int) -> Response:
        project = project_get_for_user(user=request.user, project_id=project_id)
        data = EndpointInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        endpoint, secret = endpoint_create(project=project, **data.validated_data)
        endpoint.secret = secret  # type: ignore[attr-defined]
        return Response(EndpointCreatedSerializer(endpoint).data, status=status.HTTP_201_CREATED)


class WebhookDetailApi(APIView):
    """One webhook endpoint: DELETE removes it and its deliveries."""

    @extend_schema(responses={204: None})
    def delete(self, request: Request, webhook_id: int) -> Response:
        endpoint = endpoint_get_for_user(user=request.user, endpoint_id=webhook_id)
        endpoint_delete(endpoint=endpoint)
        return Response(status=status.HTTP_204_NO_CONTENT)


class WebhookDeliveryListApi(APIView):
    """The endpoint's latest deliveries, newest first."""

    @extend_schema(responses=WebhookDeliveryOutputSerializer(many=True))
    def get(self, request: Request, webhook_id: int) -> Response:
        endpoint = endpoint_get_for_user(user=request.user, endpoint_id=webhook_id)
        deliveries = delivery_list_for_endpoint(endpoint=endpoint)
        return Response(WebhookDeliveryOutputSerializer(deliveries, many=True).data)


class WebhookRedeliverApi(APIView):
    """Send a delivery again now, with the same webhook-id and body."""

    @extend_schema(request=None, responses={202: WebhookDeliveryOutputSerializer})
    def post(self, request: Request, webhook_id: int, delivery_id: int) -> Response:
        endpoint = endpoint_get_for_user(user=request.user, endpoint_id=webhook_id)
        delivery = delivery_get_for_endpoint(endpoint=endpoint, delivery_id=delivery_id)
        delivery = delivery_redeliver(delivery=delivery)
        return Response(
            WebhookDeliveryOutputSerializer(delivery).data, status=status.HTTP_202_ACCEPTED
        )
