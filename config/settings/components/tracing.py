"""Settings of OpenTelemetry traces (``common.tracing``), from the environment.

With ``OTEL_EXPORTER_OTLP_ENDPOINT`` set, every process sends its spans to that collector over
OTLP/HTTP: every run is one trace (run, stage, step, model call, sandbox check), and Django,
Celery, psycopg and Redis are instrumented. Without it nothing is installed and nothing sent.
"""

from urllib.parse import urlsplit

from django.core.exceptions import ImproperlyConfigured

from ..env import env

# OTLP/HTTP address of a trace collector (e.g. http://collector:4318; spans go to its
# /v1/traces). Empty: no tracing at all (no instrumentation is installed, nothing is sent).
OTEL_EXPORTER_OTLP_ENDPOINT = env.str("OTEL_EXPORTER_OTLP_ENDPOINT", default="").strip()
# Headers sent with every export (comma-separated name=value pairs, e.g. a hosted collector's
# API key); never logged.
OTEL_EXPORTER_OTLP_HEADERS = env.str("OTEL_EXPORTER_OTLP_HEADERS", default="")
# The service.name every span of this deployment carries.
OTEL_SERVICE_NAME = env.str("OTEL_SERVICE_NAME", default="aiflow")

if OTEL_EXPORTER_OTLP_ENDPOINT:
    _parts = urlsplit(OTEL_EXPORTER_OTLP_ENDPOINT)
    if _parts.scheme not in ("http", "https") or not _parts.hostname:
        raise ImproperlyConfigured(
            "OTEL_EXPORTER_OTLP_ENDPOINT must be an http:// or https:// URL of an OTLP collector"
        )
OTEL_EXPORTER_OTLP_HEADERS_PARSED: dict[str, str] = {}
for _pair in filter(None, (item.strip() for item in OTEL_EXPORTER_OTLP_HEADERS.split(","))):
    _name, _sep, _value = _pair.partition("=")
    if not _sep or not _name.strip():
        raise ImproperlyConfigured(
            "OTEL_EXPORTER_OTLP_HEADERS lists name=value pairs separated by commas"
        )
    OTEL_EXPORTER_OTLP_HEADERS_PARSED[_name.strip().lower()] = _value.strip()
if not OTEL_SERVICE_NAME.strip():
    raise ImproperlyConfigured("OTEL_SERVICE_NAME may not be empty")
