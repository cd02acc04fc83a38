"""Routes of webhook endpoints (the API has no prefix)."""

from django.urls import path

from .views import (
    ProjectWebhookListApi,
    WebhookDeliveryListApi,
    WebhookDetailApi,
    WebhookRedeliverApi,
)

urlpatterns = [
    path(
        "projects/<int:project_id>/webhooks",
        ProjectWebhookListApi.as_view(),
        name="project-webhooks",
    ),
    path("webhooks/<int:webhook_id>", WebhookDetailApi.as_view(), name="webhook-detail"),
    path(
        "webhooks/<int:webhook_id>/deliveries",
        WebhookDeliveryListApi.as_view(),
        name="webhook-deliveries",
    ),
    path(
        "webhooks/<int:webhook_id>/deliveries/<int:delivery_id>/redeliver",
        WebhookRedeliverApi.as_view(),
        name="webhook-redeliver",
    ),
]
