from django.apps import AppConfig


class ProvidersConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "providers"

    def ready(self) -> None:
        # Registers the llm_* Prometheus metrics so /metrics shows them from the start.
        from . import checks, metrics  # noqa: F401
