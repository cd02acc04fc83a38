"""Server-Sent Events: a run's progress, replayed from ``Last-Event-ID`` and then live.

The view itself is an ordinary DRF view, so authentication (JWT through the project's
``DEFAULT_AUTHENTICATION_CLASSES``, or the Django session), the owner check and error
rendering are the same as everywhere else. It answers with a ``StreamingHttpResponse``
over an *async* generator, which daphne serves without pinning a worker thread: the
generator reads the Event table in short sync sections, returning the database connection
after each, and sleeps between them on the run's Channels group (woken at once by
``publish``) or on a poll timer when no push arrives.
"""

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import connection
from django.http import StreamingHttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.renderers import BaseRenderer, JSONRenderer
from rest_framework.request import Request
from rest_framework.views import APIView

from common.errors import ApplicationError, NotFound
from common.logging import get_logger

from ..events import (
    event_final_seq,
    event_list_after,
    event_serialize,
    run_get_for_owner,
    run_group_name,
)

logger = get_logger(__name__)

# A finished run whose final event never shows up (it should not happen) still ends the
# stream after this many empty polls.
_FINISHED_WITHOUT_FINAL_EVENT_POLLS = 10


class EventStreamRenderer(BaseRenderer):
    """Lets DRF's content negotiation accept ``Accept: text/event-stream`` (EventSource).

    Only error bodies go through it (as JSON text); the stream itself bypasses renderers.
    """

    media_type = "text/event-stream"
    format = "sse"
    charset = "utf-8"

    def render(
        self, data: Any, accepted_media_type: str | None = None, renderer_context: Any = None
    ) -> bytes:
        return json.dumps(data).encode("utf-8")


def parse_last_event_id(raw: str | None) -> int:
    """The sequence number a client has already seen (0 when none); 400 on garbage."""
    if raw is None or raw.strip() == "":
        return 0
    try:
        value = int(raw.strip())
    except ValueError as exc:
        raise ApplicationError(
            "Last-Event-ID must be an event sequence number.", code="invalid"
        ) from exc
    if value < 0:
        raise ApplicationError("Last-Event-ID must not be negative.", code="invalid")
    return value


def _release_connection() -> None:
    """Hand the database connection back to the pool between polls.

    Inside an atomic block (only ever in tests) closing would break the transaction.
    """
    if not connection.in_atomic_block:
        connection.close()


def _fetch(run_id: int, after_seq: int) -> tuple[list[dict[str, Any]], bool, int | None]:
    """One poll: the events after ``after_seq``, whether the run is finished, its final seq."""
    from ..models import Run

    try:
        events = [event_serialize(e) for e in event_list_after(run_id=run_id, after_seq=after_seq)]
        status = Run.objects.filter(id=run_id).values_list("status", flat=True).first()
        finished = status is None or status in Run.FINISHED
        final_seq = event_final_seq(run_id=run_id)
        return events, finished, final_seq
    finally:
        _release_connection()


def format_sse(event: dict[str, Any]) -> bytes:
    """One SSE message: ``id:`` = seq, ``event:`` = type, ``data:`` = the JSON event."""
    data = json.dumps(event, separators=(",", ":"), default=str)
    return f"id: {event['seq']}\nevent: {event['type']}\ndata: {data}\n\n".encode()


async def _subscribe(run_id: int) -> tuple[Any, str | None]:
    """A private channel in the run's group, or ``(None, None)`` when Redis is unreachable."""
    from channels.layers import get_channel_layer

    layer = get_channel_layer()
    if layer is None:
        return None, None
    try:
        channel = await layer.new_channel()
        await layer.group_add(run_group_name(run_id), channel)
    except Exception:
        logger.warning("sse.subscribe_failed", run_id=run_id, exc_info=True)
        return None, None
    return layer, channel


async def _wait(layer: Any, channel: str | None, timeout: float) -> None:
    """Sleep up to ``timeout`` seconds, waking early when a push for the run arrives."""
    if layer is None or channel is None:
        await asyncio.sleep(timeout)
        return
    try:
        await asyncio.wait_for(layer.receive(channel), timeout)
    except TimeoutError:
        pass
    except Exception:  # a broken layer degrades to plain polling
        logger.warning("sse.receive_failed", exc_info=True)
        await asyncio.sleep(timeout)


async def event_stream(run_id: int, after_seq: int) -> AsyncIterator[bytes]:
    """Yield the run's events after ``after_seq`` in strict seq order, then live ones.

    Ends after the final event (run.completed / run.failed / run.cancelled), at once for a
    client that already saw it, or after ``EVENTS_STREAM_MAX_SECONDS``.
    """
    heartbeat = settings.EVENTS_SSE_HEARTBEAT_SECONDS
    poll = settings.EVENTS_POLL_SECONDS
    deadline = time.monotonic() + settings.EVENTS_STREAM_MAX_SECONDS
    fetch = sync_to_async(_fetch)
    layer, channel = await _subscribe(run_id)
    last_seq = after_seq
    last_write = time.monotonic()
    empty_finished_polls = 0
    try:
        yield f"retry: {int(poll * 1000) + 1000}\n\n".encode()
        while time.monotonic() < deadline:
            events, finished, final_seq = await fetch(run_id, last_seq)
            for event in events:
                yield format_sse(event)
                last_seq = event["seq"]
                last_write = time.monotonic()
                if final_seq is not None and event["seq"] >= final_seq:
                    return
            if not events:
                if final_seq is not None and final_seq <= last_seq:
                    return
                empty_finished_polls = empty_finished_polls + 1 if finished else 0
                if empty_finished_polls >= _FINISHED_WITHOUT_FINAL_EVENT_POLLS:
                    return
            if time.monotonic() - last_write >= heartbeat:
                yield b": heartbeat\n\n"
                last_write = time.monotonic()
            if events:
                continue  # a full page may mean more are waiting
            until_heartbeat = heartbeat - (time.monotonic() - last_write)
            await _wait(layer, channel, max(0.01, min(poll, until_heartbeat)))
    finally:
        if layer is not None and channel is not None:
            try:
                await layer.group_discard(run_group_name(run_id), channel)
            except Exception:
                logger.warning("sse.unsubscribe_failed", run_id=run_id, exc_info=True)


class RunEventsApi(APIView):
    """``GET /runs/{id}/events``: the run's progress as Server-Sent Events (owner only)."""

    renderer_classes = [JSONRenderer, EventStreamRenderer]

    @extend_schema(
        parameters=[
            OpenApiParameter(
                "last_event_id",
                int,
                description="Replay events after this seq "
                "(EventSource clients; the Last-Event-ID header wins).",
            ),
        ],
        responses={(200, "text/event-stream"): OpenApiTypes.STR},
    )
    def get(self, request: Request, run_id: int) -> StreamingHttpResponse:
        run = run_get_for_owner(user=request.user, run_id=run_id)
        if run is None:
            raise NotFound("Run not found.")
        after = parse_last_event_id(
            request.headers.get("Last-Event-ID") or request.query_params.get("last_event_id")
        )
        response = StreamingHttpResponse(
            event_stream(run.pk, after), content_type="text/event-stream; charset=utf-8"
        )
        response["Cache-Control"] = "no-cache"
        response["X-Accel-Buffering"] = "no"
        return response
