from django.apps import AppConfig


class WebhooksConfig(AppConfig):
    """Signed webhooks out: a project's endpoints hear about its runs (Standard Webhooks)."""

    default_auto_field = "django.db.models.BigAutoField"
    name = "webhooks"

    def ready(self) -> None:
        # The deliveries of a run event are rows written in the transaction that stores it.
        from pipeline.events import events_hook_add

        from .catalogue import source_types
        from .services import deliveries_create_for_events

        events_hook_add(types=source_types(), hook=deliveries_create_for_events)
