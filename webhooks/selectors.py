"""Reads of webhook endpoints and deliveries, always through the project's owner."""

from typing import Any

from django.db.models import QuerySet

from common.errors import NotFound

from .models import Delivery, Endpoint

# Deliveries an endpoint's log shows at most (newest first).
DELIVERY_LOG_LIMIT = 100


def endpoint_list_for_project(*, project: Any) -> QuerySet[Endpoint]:
    """The endpoints of ``project`` (already checked to be the caller's), oldest first."""
    return Endpoint.objects.filter(project=project).order_by("created_at", "id")


def endpoint_get_for_user(*, user: Any, endpoint_id: int) -> Endpoint:
    """The endpoint if ``user`` owns its project, else ``NotFound``."""
    endpoint = (
        Endpoint.objects.select_related("project")
        .filter(id=endpoint_id, project__owner=user)
        .first()
    )
    if endpoint is None:
        raise NotFound("Webhook endpoint not found.")
    return endpoint


def delivery_list_for_endpoint(
    *, endpoint: Endpoint, limit: int = DELIVERY_LOG_LIMIT
) -> list[Delivery]:
    """The endpoint's latest deliveries, newest first (the body is not loaded)."""
    return list(
        Delivery.objects.filter(endpoint=endpoint)
        .defer("body")
        .order_by("-created_at", "-id")[:limit]
    )


def delivery_get_for_endpoint(*, endpoint: Endpoint, delivery_id: int) -> Delivery:
    """One delivery of ``endpoint`` (already checked to be the caller's), else ``NotFound``."""
    delivery = Delivery.objects.filter(id=delivery_id, endpoint=endpoint).first()
    if delivery is None:
        raise NotFound("Delivery not found.")
    return delivery
