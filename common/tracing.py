"""OpenTelemetry traces: on only when ``OTEL_EXPORTER_OTLP_ENDPOINT`` is set.

``tracing_configure`` (called once per process when the apps are ready) installs the SDK's
tracer provider with an OTLP/HTTP exporter (batched, off the request path) and the contrib
instrumentations of Django, Celery, psycopg and Redis. Without the setting it returns at once:
no SDK is imported, nothing is instrumented, and every helper here is a plain call that does
nothing (``span`` yields ``None``, ``traced`` calls the function).

Spans that outlive a process (a run, a stage: minutes long, spread over workers) cannot be
held open in memory. They get ids chosen up front instead, which every process can compute
(``span_id_for``); their children name them as a remote parent (``remote_context``), and the
span itself is exported once its end is known (``span_export``), with its real start time.

Attribute names follow the OpenTelemetry GenAI semantic conventions where they name the thing
(``gen_ai.operation.name``, ``gen_ai.request.model``, ``gen_ai.usage.input_tokens``...); cost
uses the proposed ``gen_ai.usage.cost.*`` names (the conventions have no cost attribute yet);
the rest is ``aiflow.*``.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import datetime
from functools import wraps
from typing import Any, TypeVar

from django.conf import settings

from common.logging import get_logger

logger = get_logger(__name__)

F = TypeVar("F", bound=Callable[..., Any])
Attributes = Mapping[str, Any]

# (trace id, span id) the next span the SDK starts in this context must have.
_chosen_ids: ContextVar[tuple[int, int] | None] = ContextVar("tracing_chosen_ids", default=None)


@dataclass
class _State:
    enabled: bool = False
    provider: Any = None
    tracer: Any = None
    instrumentors: list[Any] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


_state = _State()


def tracing_enabled() -> bool:
    """Whether this process exports spans."""
    return _state.enabled


def tracing_configure(*, exporter: Any = None) -> bool:
    """Install tracing in this process (once); False when there is nothing to export to.

    ``exporter`` replaces the OTLP exporter and sends each span as it ends (the tests give
    the SDK's in-memory exporter); without it the OTLP/HTTP exporter is used only when
    ``OTEL_EXPORTER_OTLP_ENDPOINT`` is set.
    """
    with _state.lock:
        if _state.enabled:
            return True
        if exporter is None and not settings.OTEL_EXPORTER_OTLP_ENDPOINT:
            return False
        from opentelemetry.instrumentation.celery import CeleryInstrumentor
        from opentelemetry.instrumentation.django import DjangoInstrumentor
        from opentelemetry.instrumentation.psycopg import PsycopgInstrumentor
        from opentelemetry.instrumentation.redis import RedisInstrumentor
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor

        provider = TracerProvider(
            resource=Resource.create({"service.name": settings.OTEL_SERVICE_NAME}),
            id_generator=_chosen_id_generator(),
        )
        if exporter is not None:
            provider.add_span_processor(SimpleSpanProcessor(exporter))
        else:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            endpoint = settings.OTEL_EXPORTER_OTLP_ENDPOINT.rstrip("/") + "/v1/traces"
            headers = dict(settings.OTEL_EXPORTER_OTLP_HEADERS_PARSED) or None
            provider.add_span_processor(
                BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint, headers=headers))
            )
        instrumentors: list[Any] = [
            DjangoInstrumentor(),
            CeleryInstrumentor(),
            PsycopgInstrumentor(),
            RedisInstrumentor(),
        ]
        for instrumentor in instrumentors:
            instrumentor.instrument(tracer_provider=provider)
        _state.provider = provider
        _state.tracer = provider.get_tracer("aiflow")
        _state.instrumentors = instrumentors
        _state.enabled = True
    logger.info("tracing.configured", exporter=type(exporter).__name__ if exporter else "otlp")
    return True


def tracing_shutdown() -> None:
    """Remove the instrumentations and stop exporting (spans already ended are flushed)."""
    with _state.lock:
        if not _state.enabled:
            return
        for instrumentor in _state.instrumentors:
            instrumentor.uninstrument()
        _state.provider.force_flush()
        _state.enabled = False
        _state.tracer = None
        _state.provider = None
        _state.instrumentors = []


def _chosen_id_generator() -> Any:
    from opentelemetry.sdk.trace.id_generator import RandomIdGenerator

    class ChosenIds(RandomIdGenerator):
        """Random ids, except for a span whose ids were chosen up front (``span_export``)."""

        def generate_span_id(self) -> int:
            chosen = _chosen_ids.get()
            return chosen[1] if chosen else super().generate_span_id()

        def generate_trace_id(self) -> int:
            chosen = _chosen_ids.get()
            return chosen[0] if chosen else super().generate_trace_id()

    return ChosenIds()


# --- ids and W3C traceparent ----------------------------------------------------------------


def traceparent_format(trace_id: int, span_id: int, *, sampled: bool = True) -> str:
    """The W3C ``traceparent`` header of a span."""
    return f"00-{trace_id:032x}-{span_id:016x}-{'01' if sampled else '00'}"


def traceparent_parse(value: str) -> tuple[int, int, bool] | None:
    """``(trace id, span id, sampled)`` of a W3C ``traceparent``, or None when it is not one."""
    parts = (value or "").strip().split("-")
    if len(parts) != 4 or parts[0] != "00" or len(parts[1]) != 32 or len(parts[2]) != 16:
        return None
    try:
        trace_id, span_id, flags = int(parts[1], 16), int(parts[2], 16), int(parts[3], 16)
    except ValueError:
        return None
    if not trace_id or not span_id:
        return None
    return trace_id, span_id, bool(flags & 1)


def span_id_for(*parts: object) -> int:
    """A span id every process computes alike from ``parts`` (never 0)."""
    digest = hashlib.blake2b("\x1f".join(map(str, parts)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") or 1


def new_trace_id() -> int:
    """A random trace id (for a span with no parent)."""
    import secrets

    return secrets.randbits(128) or 1


def current_span_ids() -> tuple[int, int, bool] | None:
    """``(trace id, span id, sampled)`` of the span current here (a request's), if any."""
    if not _state.enabled:
        return None
    from opentelemetry import trace

    context = trace.get_current_span().get_span_context()
    if not context.is_valid:
        return None
    return context.trace_id, context.span_id, context.trace_flags.sampled


def _remote(trace_id: int, span_id: int, sampled: bool) -> Any:
    from opentelemetry import trace
    from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

    span_context = SpanContext(
        trace_id=trace_id,
        span_id=span_id,
        is_remote=True,
        trace_flags=TraceFlags(TraceFlags.SAMPLED if sampled else TraceFlags.DEFAULT),
    )
    return trace.set_span_in_context(NonRecordingSpan(span_context))


@contextmanager
def remote_context(trace_id: int, span_id: int, sampled: bool = True) -> Iterator[None]:
    """Spans started inside are children of span ``span_id`` of trace ``trace_id`` (a span
    another process exports, or will)."""
    if not _state.enabled:
        yield
        return
    from opentelemetry import context

    token = context.attach(_remote(trace_id, span_id, sampled))
    try:
        yield
    finally:
        context.detach(token)


# --- spans ----------------------------------------------------------------------------------


def _kind(name: str) -> Any:
    from opentelemetry.trace import SpanKind

    return getattr(SpanKind, name.upper())


@contextmanager
def span(
    name: str, *, kind: str = "internal", attributes: Attributes | None = None
) -> Iterator[Any]:
    """A span around the block, child of the current one; ``None`` when tracing is off.

    An exception leaving the block is recorded on the span and sets its status to error.
    """
    if not _state.enabled:
        yield None
        return
    with _state.tracer.start_as_current_span(
        name, kind=_kind(kind), attributes=_clean(attributes)
    ) as current:
        yield current


def traced(
    name: str | Callable[..., str],
    *,
    kind: str = "internal",
    attributes: Callable[..., Attributes] | None = None,
    result_attributes: Callable[[Any], Attributes] | None = None,
) -> Callable[[F], F]:
    """Decorate a function with a span (its name, or ``name(*args, **kwargs)``); the span's
    attributes from the arguments and from the result. A plain call when tracing is off."""

    def decorate(function: F) -> F:
        @wraps(function)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            if not _state.enabled:
                return function(*args, **kwargs)
            title = name(*args, **kwargs) if callable(name) else name
            given = attributes(*args, **kwargs) if attributes is not None else None
            with span(title, kind=kind, attributes=given) as current:
                result = function(*args, **kwargs)
                if result_attributes is not None and current is not None:
                    current.set_attributes(_clean(result_attributes(result)))
                return result

        return wrapper  # type: ignore[return-value]

    return decorate


def span_error(current: Any, description: str, *, error_type: str | None = None) -> None:
    """Mark ``current`` (a span, or None) as failed without an exception."""
    if current is None:
        return
    from opentelemetry.trace import Status, StatusCode

    current.set_status(Status(StatusCode.ERROR, description[:300]))
    if error_type:
        current.set_attribute("error.type", error_type)


def _ns(moment: datetime) -> int:
    return int(moment.timestamp() * 1_000_000_000)


def span_export(
    name: str,
    *,
    trace_id: int,
    span_id: int,
    parent_id: int | None,
    sampled: bool,
    start: datetime,
    end: datetime,
    attributes: Attributes | None = None,
    error: str | None = None,
    kind: str = "internal",
) -> None:
    """Export a span whose ids were chosen up front, now that its end is known."""
    if not _state.enabled:
        return
    from opentelemetry.context import Context

    parent = _remote(trace_id, parent_id, sampled) if parent_id else Context()
    token = _chosen_ids.set((trace_id, span_id))
    try:
        exported = _state.tracer.start_span(
            name,
            context=parent,
            kind=_kind(kind),
            attributes=_clean(attributes),
            start_time=_ns(start),
        )
    finally:
        _chosen_ids.reset(token)
    if error:
        span_error(exported, error)
    exported.end(end_time=max(_ns(end), _ns(start)))


def _clean(attributes: Attributes | None) -> dict[str, Any]:
    """Attributes without empty values (OpenTelemetry refuses None)."""
    return {key: value for key, value in (attributes or {}).items() if value is not None}
