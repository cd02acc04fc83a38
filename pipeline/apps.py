from django.apps import AppConfig


class PipelineConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "pipeline"

    def ready(self) -> None:
        # Tracing is set up once per process, before any request or task: with
        # OTEL_EXPORTER_OTLP_ENDPOINT unset, nothing is imported or instrumented.
        from common.tracing import tracing_configure

        from . import signals  # noqa: F401 - connects the receivers

        if tracing_configure():
            from .tracing import tracing_install

            tracing_install()
