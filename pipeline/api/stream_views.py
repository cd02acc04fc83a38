"""Server-Sent Events: a run's progress, replayed from ``Last-Event-ID`` and then live.

The view itself is an ordinary DRF view, so authentication (JWT through the project's
``DEFAULT_AUTHENTICATION_CLASSES``, or the Django session), the owner check and error
rendering are the same as everywhere else. It answers with a ``StreamingHttpResponse``
over an *async* generator, which daphne serves without pinning a worker thread.

The generator reads the Event table at the start, then waits on the process's fan-out
(``pipeline.fanout``: one channel per run per web process, however many streams watch it).
A pushed event whose ``seq`` follows the last one sent goes out as it is, without a query;
a gap, a final event, a lost push or a heartbeat interval without one sends the generator
back to the table (in a short sync section that returns the database connection), so the
stream stays gap-free and in ``seq`` order whatever happens to the pushes. While nothing is
pushed it sends a heartbeat every ``EVENTS_SSE_HEARTBEAT_SECONDS``; a stream with no event
for ``EVENTS_STREAM_IDLE_SECONDS`` (a run parked at the approval gate) ends cleanly, and
the client reconnects with ``Last-Event-ID`` when it wants more. The stream also listens to
the group of the session it was opened under, so revoking that session ends it at once.
Each user may hold ``EVENTS_STREAMS_PER_USER`` streams (SSE and run sockets together); one
more is a 429.

``POST /runs/{id}/ws-ticket`` hands out the single-use ticket ``/ws/runs/{id}/`` needs.
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
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.renderers import BaseRenderer, JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.revocation import request_sid, session_is_live, stream_groups
from common.errors import ApplicationError, NotFound
from common.logging import get_logger
from common.websocket import (
    stream_lease_acquire,
    stream_lease_refresh,
    stream_lease_release,
    ticket_issue,
)

from ..events import (
    CHANNEL_MESSAGE_TYPE,
    FINAL_EVENT_TYPES,
    event_final_seq,
    event_list_after,
    event_serialize,
    run_get_for_owner,
    run_group_name,
)
from ..fanout import Subscription, fanout_subscribe

logger = get_logger(__name__)

# A finished run whose final event never shows up (it should not happen) still ends the
# stream after this many empty polls.
_FINISHED_WITHOUT_FINAL_EVENT_POLLS = 10
# Events one table read returns at most (``event_list_after``'s default).
_PAGE = 500


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
        stored = event_list_after(run_id=run_id, after_seq=after_seq, limit=_PAGE)
        events = [event_serialize(e) for e in stored]
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


STREAM_KIND = "events"
TICKET_KIND = "run-events"


class TooManyStreams(ApplicationError):
    """The user already holds ``EVENTS_STREAMS_PER_USER`` open event streams."""

    status_code = status.HTTP_429_TOO_MANY_REQUESTS
    code = "too_many_streams"


def _lease_ttl() -> float:
    return float(settings.EVENTS_SSE_HEARTBEAT_SECONDS) * 4 + 30


def events_stream_lease_acquire(*, user_id: int) -> str:
    """Count one more open event stream of ``user_id``; ``TooManyStreams`` at the cap."""
    lease = stream_lease_acquire(
        kind=STREAM_KIND,
        user_id=user_id,
        limit=int(settings.EVENTS_STREAMS_PER_USER),
        ttl=_lease_ttl(),
    )
    if lease is None:
        raise TooManyStreams(
            f"At most {settings.EVENTS_STREAMS_PER_USER} event streams may be open at once; "
            "close one first."
        )
    return lease


async def _wait(subscription: Subscription | None, timeout: float) -> list[dict[str, Any]]:
    """Sleep up to ``timeout`` seconds, waking early on a push; the pushed messages, if any."""
    if subscription is None:
        await asyncio.sleep(min(timeout, float(settings.EVENTS_POLL_SECONDS)))
        return []
    return await subscription.receive(timeout)


def _housekeeping(user_id: int, lease: str | None, sid: str) -> bool:
    """Refresh the stream's lease; False once its session is revoked."""
    try:
        if lease is not None:
            stream_lease_refresh(kind=STREAM_KIND, user_id=user_id, lease=lease, ttl=_lease_ttl())
        return session_is_live(sid)
    finally:
        _release_connection()


async def event_stream(
    run_id: int,
    after_seq: int,
    *,
    user_id: int | None = None,
    sid: str = "",
    lease: str | None = None,
) -> AsyncIterator[bytes]:
    """Yield the run's events after ``after_seq`` in strict seq order, then live ones.

    Ends after the final event (run.completed / run.failed / run.cancelled), at once for a
    client that already saw it, when the session ``sid`` is revoked, after
    ``EVENTS_STREAM_IDLE_SECONDS`` without an event, or after ``EVENTS_STREAM_MAX_SECONDS``.
    """
    heartbeat = float(settings.EVENTS_SSE_HEARTBEAT_SECONDS)
    poll = float(settings.EVENTS_POLL_SECONDS)
    idle = float(settings.EVENTS_STREAM_IDLE_SECONDS)
    deadline = time.monotonic() + settings.EVENTS_STREAM_MAX_SECONDS
    fetch = sync_to_async(_fetch)
    groups = [run_group_name(run_id), *stream_groups(sid)]
    subscription: Subscription | None = None
    last_seq = after_seq
    last_write = last_event = time.monotonic()
    empty_finished_polls = 0
    read_table = True
    try:
        # Inside the try: a client gone while the stream joins its groups (the task cancelled
        # here) still gives back the slot the view took for it.
        subscription = await fanout_subscribe(groups)
        yield f"retry: {int(poll * 1000) + 1000}\n\n".encode()
        while time.monotonic() < deadline:
            if read_table:
                # At the start, after a gap or a lost push, and when a heartbeat interval
                # passed without a push: the table is the source of truth.
                events, finished, final_seq = await fetch(run_id, last_seq)
                for event in events:
                    yield format_sse(event)
                    last_seq = event["seq"]
                    last_write = last_event = time.monotonic()
                    if final_seq is not None and event["seq"] >= final_seq:
                        return
                read_table = len(events) >= _PAGE  # a full page may mean more are waiting
                if read_table:
                    continue
                if final_seq is not None and final_seq <= last_seq:
                    return
                empty_finished_polls = 0 if events or not finished else empty_finished_polls + 1
                if empty_finished_polls >= _FINISHED_WITHOUT_FINAL_EVENT_POLLS:
                    return
            now = time.monotonic()
            if now - last_event >= idle:
                yield b": idle; reconnect with Last-Event-ID for more\n\n"
                return
            if now - last_write >= heartbeat:
                yield b": heartbeat\n\n"
                last_write = now
                if user_id is not None and not await sync_to_async(_housekeeping)(
                    user_id, lease, sid
                ):
                    return
            until = min(heartbeat - (now - last_write), idle - (now - last_event))
            if empty_finished_polls:
                until = min(until, poll)  # finished without a final event: look again soon
            messages = await _wait(subscription, max(0.01, until))
            read_table = not messages
            for message in messages:
                kind = message.get("type")
                if kind == "session.revoked":
                    yield b": session revoked\n\n"
                    return
                pushed = message.get("event") if kind == CHANNEL_MESSAGE_TYPE else None
                if pushed is None:  # a lost push, or a message this stream does not know
                    read_table = True
                    continue
                if read_table or pushed["seq"] <= last_seq:
                    continue  # the table read covers it, or it was sent already
                if pushed["seq"] != last_seq + 1 or pushed["type"] in FINAL_EVENT_TYPES:
                    # A gap (a push still on its way or lost), or an end that only the
                    # table can confirm (a resumed run's old failure is not its end).
                    read_table = True
                    continue
                yield format_sse(pushed)
                last_seq = pushed["seq"]
                last_write = last_event = time.monotonic()
                empty_finished_polls = 0
    finally:
        if subscription is not None:
            await subscription.close()
        if lease is not None and user_id is not None:
            _give_back(user_id, lease)


def _give_back(user_id: int, lease: str) -> None:
    """Give the stream's slot back; a failure is only logged, since the lease expires."""
    try:
        stream_lease_release(kind=STREAM_KIND, user_id=user_id, lease=lease)
    except Exception:  # the lease expires by itself
        logger.warning("sse.lease_release_failed", exc_info=True)


class _EventStreamResponse(StreamingHttpResponse):
    """The stream's response; closing it gives its slot back.

    The server closes every response when its request ends (the client gone, or the stream
    over), while the stream's own ``finally`` runs only once its generator is closed or
    collected: the generator sits under the wrappers Django puts around streaming content,
    which closing does not reach. Giving the lease back twice is harmless.
    """

    def __init__(self, *args: Any, user_id: int, lease: str, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._lease = (user_id, lease)

    def close(self) -> None:
        try:
            _give_back(*self._lease)
        finally:
            super().close()


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
        user_id = request.user.pk or 0
        lease = events_stream_lease_acquire(user_id=user_id)
        response = _EventStreamResponse(
            event_stream(run.pk, after, user_id=user_id, sid=request_sid(request), lease=lease),
            content_type="text/event-stream; charset=utf-8",
            user_id=user_id,
            lease=lease,
        )
        response["Cache-Control"] = "no-cache"
        response["X-Accel-Buffering"] = "no"
        return response


class RunSocketTicketOutput(serializers.Serializer):
    ticket = serializers.CharField()
    ws_url = serializers.CharField()


class RunSocketTicketApi(APIView):
    """``POST /runs/{id}/ws-ticket``: a single-use ticket for ``/ws/runs/{id}/`` (owner only)."""

    @extend_schema(
        request=inline_serializer("RunSocketTicketInput", {}),
        responses={201: RunSocketTicketOutput},
    )
    def post(self, request: Request, run_id: int) -> Response:
        run = run_get_for_owner(user=request.user, run_id=run_id)
        if run is None:
            raise NotFound("Run not found.")
        ticket = ticket_issue(
            kind=TICKET_KIND,
            user_id=request.user.pk or 0,
            object_id=run.pk,
            sid=request_sid(request),
            ttl=int(settings.EVENTS_WS_TICKET_TTL),
        )
        scheme = "wss" if request.is_secure() else "ws"
        ws_url = f"{scheme}://{request.get_host()}/ws/runs/{run.pk}/?ticket={ticket}"
        body = RunSocketTicketOutput({"ticket": ticket, "ws_url": ws_url}).data
        return Response(body, status=status.HTTP_201_CREATED)
