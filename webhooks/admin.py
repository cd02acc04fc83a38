"""Admin for webhook endpoints and deliveries: read-only lists (secrets never shown), and a
Redeliver action that calls the same service as the API."""

from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from common.errors import ApplicationError

from .models import Delivery, Endpoint
from .services import delivery_redeliver


@admin.register(Endpoint)
class EndpointAdmin(admin.ModelAdmin):
    """A project's endpoints; the signing secret stays out of every page."""

    list_display = ("id", "project", "url", "events", "created_at")
    search_fields = ("url", "project__name")
    readonly_fields = ("project", "url", "events", "created_at")
    exclude = ("secret_encrypted",)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Delivery)
class DeliveryAdmin(admin.ModelAdmin):
    """Every delivery with its attempts; Redeliver sends the same message again."""

    list_display = (
        "id",
        "event",
        "endpoint",
        "status",
        "attempts",
        "response_code",
        "created_at",
        "next_attempt_at",
    )
    list_filter = ("status", "event")
    search_fields = ("message_id", "endpoint__url")
    actions = ["redeliver"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.action(description="Redeliver (same webhook-id)")
    def redeliver(self, request: HttpRequest, queryset: QuerySet[Delivery]) -> None:
        done, refused = [], []
        for delivery in queryset:
            try:
                delivery_redeliver(delivery=delivery)
            except ApplicationError as exc:
                refused.append(f"{delivery.pk}: {exc.detail}")
            else:
                done.append(str(delivery.pk))
        if done:
            messages.success(request, f"Redelivering: {', '.join(done)}.")
        for line in refused:
            messages.warning(request, f"Not redelivered: {line}")
