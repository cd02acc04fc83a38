"""Tracing is installed only with OTEL_EXPORTER_OTLP_ENDPOINT, and then spans reach it.

Each case starts a fresh Python process (tracing is set up once per process, when the apps
are ready), as the web and worker processes do. The collector is a local HTTP server at the
edge that decodes what it receives as OTLP/HTTP protobuf.
"""

import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from common.tracing import (
    span_export,
    span_id_for,
    traceparent_format,
    traceparent_parse,
    tracing_configure,
    tracing_shutdown,
)
from tests.net import ROOT, subprocess_env, web_server
from tests.stub_http import Answer, RecordingServer

PROBE = """
import json, sys
import django
django.setup()
import psycopg, redis
from django.conf import settings
from common import tracing
with tracing.span("probe", attributes={"aiflow.probe": 1}) as current:
    recording = current is not None
if tracing.tracing_enabled():
    tracing._state.provider.force_flush()
print(json.dumps({
    "enabled": tracing.tracing_enabled(),
    "recording": recording,
    "provider": type(tracing._state.provider).__name__ if tracing._state.provider else None,
    "instrumentation_imported": any(m.startswith("opentelemetry.instr") for m in sys.modules),
    "django_middleware": [m for m in settings.MIDDLEWARE if "opentelemetry" in m],
    "psycopg_wrapped": hasattr(psycopg.Connection.connect, "__wrapped__"),
    "redis_wrapped": hasattr(redis.Redis.execute_command, "__wrapped__"),
}))
"""


def probe(**env: str) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-c", PROBE],
        cwd=ROOT,
        env=subprocess_env(**env),
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.django_db
def test_without_an_endpoint_nothing_is_installed_imported_or_sent() -> None:
    assert probe(OTEL_EXPORTER_OTLP_ENDPOINT="") == {
        "enabled": False,
        "recording": False,
        "provider": None,
        "instrumentation_imported": False,
        "django_middleware": [],
        "psycopg_wrapped": False,
        "redis_wrapped": False,
    }


@pytest.mark.django_db
def test_with_an_endpoint_spans_reach_the_collector_over_otlp_http() -> None:
    with RecordingServer(
        lambda seen: Answer(200, b"", {"Content-Type": "application/x-protobuf"})
    ) as (collector):
        state = probe(
            OTEL_EXPORTER_OTLP_ENDPOINT=collector.url,
            OTEL_EXPORTER_OTLP_HEADERS="x-collector-key=k3y",
            OTEL_SERVICE_NAME="aiflow-probe",
        )

    assert state["enabled"] and state["recording"]
    assert state["provider"] == "TracerProvider"
    assert state["django_middleware"] == [
        "opentelemetry.instrumentation.django.middleware.otel_middleware._DjangoMiddleware"
    ]
    assert state["psycopg_wrapped"] and state["redis_wrapped"]
    [seen] = collector.requests
    assert (seen.method, seen.path) == ("POST", "/v1/traces")
    assert seen.headers["content-type"] == "application/x-protobuf"
    assert seen.headers["x-collector-key"] == "k3y"
    exported = ExportTraceServiceRequest.FromString(seen.body)
    [resource] = exported.resource_spans
    service = {a.key: a.value.string_value for a in resource.resource.attributes}
    assert service["service.name"] == "aiflow-probe"
    names = [s.name for scope in resource.scope_spans for s in scope.spans]
    assert names == ["probe"]


@pytest.mark.slow
@pytest.mark.django_db
def test_a_request_to_the_web_process_is_a_server_span_sent_to_the_collector() -> None:
    """daphne and our one-trip ASGI handler, as `make up` serves them, with the endpoint set."""
    import http.client
    import urllib.parse

    from tests.pipeline.conftest import wait_until

    with RecordingServer(
        lambda seen: Answer(200, b"", {"Content-Type": "application/x-protobuf"})
    ) as (collector):
        env = subprocess_env(
            OTEL_EXPORTER_OTLP_ENDPOINT=collector.url,
            OTEL_BSP_SCHEDULE_DELAY="100",
            WEB_PROCESSES="1",
        )
        with web_server(env=env) as (url, _):
            parts = urllib.parse.urlsplit(url)
            conn = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=60)
            conn.request("GET", "/projects/12345", headers={"traceparent": TRACEPARENT})
            assert conn.getresponse().status == 401
            conn.close()
            wait_until(lambda: collector.requests, timeout=60)
        spans = [
            span
            for seen in collector.requests
            for resource in ExportTraceServiceRequest.FromString(seen.body).resource_spans
            for scope in resource.scope_spans
            for span in scope.spans
        ]

    [server] = [s for s in spans if s.name == "GET projects/<int:project_id>"]
    assert server.trace_id.hex() == "4bf92f3577b34da6a3ce929d0e0e4736"  # the caller's trace
    assert server.parent_span_id.hex() == "00f067aa0ba902b7"
    assert server.kind == server.SPAN_KIND_SERVER


TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def test_a_traceparent_is_written_and_read_as_w3c_says() -> None:
    header = traceparent_format(0x4BF92F3577B34DA6A3CE929D0E0E4736, 0x00F067AA0BA902B7)

    assert header == "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    assert traceparent_parse(header) == (
        0x4BF92F3577B34DA6A3CE929D0E0E4736,
        0x00F067AA0BA902B7,
        True,
    )
    for bad in (
        "",
        "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        "00-00-00-00",
        "00-" + "0" * 32 + "-00f067aa0ba902b7-01",
        "00-" + "g" * 32 + "-" + "1" * 16 + "-01",
    ):
        assert traceparent_parse(bad) is None, bad


def test_a_span_exported_later_keeps_the_ids_chosen_for_it() -> None:
    exporter = InMemorySpanExporter()
    assert tracing_configure(exporter=exporter)
    try:
        start = datetime(2026, 1, 1, tzinfo=UTC)
        trace_id, parent, own = 0xABC, 0x123, span_id_for("run", 7)
        span_export(
            "stage design",
            trace_id=trace_id,
            span_id=own,
            parent_id=parent,
            sampled=True,
            start=start,
            end=start + timedelta(seconds=90),
            attributes={"aiflow.stage": "design", "aiflow.none": None},
            error="the run failed in design",
        )
    finally:
        tracing_shutdown()

    [exported] = exporter.get_finished_spans()
    assert (exported.context.trace_id, exported.context.span_id) == (trace_id, own)
    assert (exported.parent.trace_id, exported.parent.span_id) == (trace_id, parent)
    assert exported.end_time - exported.start_time == 90 * 10**9
    assert dict(exported.attributes or {}) == {"aiflow.stage": "design"}
    assert exported.status.status_code.name == "ERROR"
    assert span_id_for("run", 7) == own != span_id_for("run", 8)
