"""WebSocket ``/ws/runs/<id>/?ticket=…``: a run's progress events, the backlog and then live ones.

Admission: an allowed Origin (``common.websocket``; 4403 otherwise) and a single-use ticket
from ``POST /runs/{id}/ws-ticket`` (4401 when missing, used, expired or for another run),
still owned by its user (4404), whose session is still live (4401), under the user's cap of
open event streams (4429, shared with SSE). No token ever travels in the query string.

Like the SSE streams, the socket listens through the process's fan-out
(``pipeline.fanout``): the run's group and the group of the session its ticket was issued
to have one channel each in this web process, shared by every stream and socket watching
them. Revoking that session (logout, ``DELETE /auth/sessions/{id}``, refresh reuse) closes
the socket at once with 4401.
"""

import asyncio
import contextlib
import json
from typing import Any
from urllib.parse import parse_qs

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings

from accounts.models import User
from accounts.revocation import session_is_live, stream_groups
from common.logging import get_logger
from common.websocket import (
    CLOSE_FORBIDDEN,
    CLOSE_NOT_FOUND,
    CLOSE_TOO_MANY,
    CLOSE_UNAUTHORIZED,
    scope_origin_allowed,
    stream_lease_acquire,
    stream_lease_refresh,
    stream_lease_release,
    ticket_consume,
    ticket_from_scope,
)

from .events import (
    CHANNEL_MESSAGE_TYPE,
    FINAL_EVENT_TYPES,
    event_final_seq,
    event_list_after,
    event_serialize,
    run_get_for_owner,
    run_group_name,
)
from .fanout import Subscription, fanout_subscribe

logger = get_logger(__name__)

_PAGE = 500
# Must match the SSE view's names: one cap for both kinds of event stream.
STREAM_KIND = "events"
TICKET_KIND = "run-events"


def last_event_id_from_scope(scope: dict[str, Any]) -> int:
    """``?last_event_id=N`` (events up to N were seen already); 0 when absent or invalid."""
    query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
    try:
        return max(0, int(query.get("last_event_id", ["0"])[0]))
    except ValueError:
        return 0


def _owned_run(user_id: int, run_id: int) -> Any:
    user = User.objects.filter(pk=user_id, is_active=True).first()
    return run_get_for_owner(user=user, run_id=run_id) if user is not None else None


def _lease_ttl() -> float:
    return float(settings.EVENTS_SSE_HEARTBEAT_SECONDS) * 4 + 30


def _events_after(run_id: int, after_seq: int) -> list[dict[str, Any]]:
    return [
        event_serialize(e)
        for e in event_list_after(run_id=run_id, after_seq=after_seq, limit=_PAGE)
    ]


class RunEventsConsumer(AsyncWebsocketConsumer):
    """Streams one run's events (``{seq, type, at, payload}`` JSON text frames) to its owner.

    Subscribes to the run's group first, then sends the backlog from the table, so nothing
    published in between is missed; a live push that follows the last event sent goes out
    as it is, one that skips ahead makes the consumer read the gap from the table, and so
    does a heartbeat interval without any push (in case the last one was lost). Closes
    (1000) after the final event.
    """

    run_id: int | None = None
    last_seq: int
    done: bool = False

    async def connect(self) -> None:
        self.lease: str | None = None
        self.user_id: int | None = None
        self.sid = ""
        self._keeper: asyncio.Task[Any] | None = None
        self._pump: asyncio.Task[Any] | None = None
        self._subscription: Subscription | None = None
        run_id = int(self.scope["url_route"]["kwargs"]["run_id"])
        if not scope_origin_allowed(self.scope):
            logger.warning("ws.run_events.origin_refused", run_id=run_id)
            await self.close(code=CLOSE_FORBIDDEN)
            return
        claim = await database_sync_to_async(ticket_consume)(
            ticket=ticket_from_scope(self.scope), kind=TICKET_KIND, object_id=run_id
        )
        if claim is None:
            logger.info("ws.run_events.ticket_refused", run_id=run_id)
            await self.close(code=CLOSE_UNAUTHORIZED)
            return
        if await database_sync_to_async(_owned_run)(claim.user_id, run_id) is None:
            await self.close(code=CLOSE_NOT_FOUND)
            return
        if not await database_sync_to_async(session_is_live)(claim.sid):
            await self.close(code=CLOSE_UNAUTHORIZED, reason="session revoked")
            return
        self.lease = await database_sync_to_async(stream_lease_acquire)(
            kind=STREAM_KIND,
            user_id=claim.user_id,
            limit=int(settings.EVENTS_STREAMS_PER_USER),
            ttl=_lease_ttl(),
        )
        if self.lease is None:
            await self.close(code=CLOSE_TOO_MANY, reason="too many event streams")
            return
        self.user_id, self.sid, self.run_id = claim.user_id, claim.sid, run_id
        self.last_seq = last_event_id_from_scope(self.scope)
        groups = [run_group_name(run_id), *stream_groups(self.sid)]
        self._subscription = await fanout_subscribe(groups)
        await self.accept()
        self._keeper = asyncio.ensure_future(self._keep_alive())
        self._pump = asyncio.ensure_future(self._follow())

    async def disconnect(self, code: int) -> None:
        """Leave the groups and give the stream's slot back."""
        self.done = True
        for task in (self._keeper, self._pump):
            if task is not None and task is not asyncio.current_task():
                task.cancel()
        if self._subscription is not None:
            subscription, self._subscription = self._subscription, None
            await subscription.close()
        if self.lease is not None and self.user_id is not None:
            lease, self.lease = self.lease, None
            await database_sync_to_async(stream_lease_release)(
                kind=STREAM_KIND, user_id=self.user_id, lease=lease
            )

    async def _keep_alive(self) -> None:
        """Refresh the lease; close if the session was revoked and the push got lost."""
        while not self.done:
            await asyncio.sleep(float(settings.EVENTS_SSE_HEARTBEAT_SECONDS))
            if self.lease is not None and self.user_id is not None:
                await database_sync_to_async(stream_lease_refresh)(
                    kind=STREAM_KIND, user_id=self.user_id, lease=self.lease, ttl=_lease_ttl()
                )
            if not await database_sync_to_async(session_is_live)(self.sid):
                await self.session_revoked({})
                return

    async def _follow(self) -> None:
        """Send the backlog, then every pushed event, reading the table where pushes fall short."""
        heartbeat = float(settings.EVENTS_SSE_HEARTBEAT_SECONDS)
        try:
            await self._catch_up()
            while not self.done:
                if self._subscription is None:  # no layer: poll the table
                    await asyncio.sleep(float(settings.EVENTS_POLL_SECONDS))
                    messages: list[dict[str, Any]] = []
                else:
                    messages = await self._subscription.receive(heartbeat)
                if not messages:
                    await self._catch_up()
                for message in messages:
                    if self.done:
                        return
                    kind = message.get("type")
                    if kind == "session.revoked":
                        await self.session_revoked(message)
                    elif kind == CHANNEL_MESSAGE_TYPE:
                        await self.run_event(message)
                    else:  # a lost push
                        await self._catch_up()
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.warning("ws.run_events.follow_failed", run_id=self.run_id, exc_info=True)
            if not self.done:
                self.done = True
                with contextlib.suppress(Exception):  # the socket may be gone already
                    await self.close(code=1011)

    async def session_revoked(self, message: dict[str, Any]) -> None:
        """The session this socket was opened under was signed out: close now."""
        if self.done:
            return
        self.done = True
        await self.close(code=CLOSE_UNAUTHORIZED, reason="session revoked")

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        """Clients have nothing to say on this socket; frames they send are ignored."""

    async def run_event(self, message: dict[str, Any]) -> None:
        """A pushed event (from ``publish`` on commit, through the fan-out)."""
        if self.done:
            return
        event = message["event"]
        if event["seq"] <= self.last_seq:
            return
        if event["seq"] == self.last_seq + 1:
            await self._send_event(event)
        else:
            await self._catch_up()

    async def _send_event(self, event: dict[str, Any]) -> None:
        await self.send(text_data=_dumps(event))
        self.last_seq = event["seq"]
        if event["type"] in FINAL_EVENT_TYPES:
            final_seq = await database_sync_to_async(event_final_seq)(run_id=self.run_id)
            if final_seq is not None and event["seq"] >= final_seq:
                self.done = True
                await self.close(code=1000)

    async def _catch_up(self) -> None:
        """Send every stored event after ``last_seq``; close if the run already ended."""
        while not self.done:
            events = await database_sync_to_async(_events_after)(self.run_id, self.last_seq)
            for event in events:
                await self._send_event(event)
                if self.done:
                    return
            if len(events) < _PAGE:
                break
        final_seq = await database_sync_to_async(event_final_seq)(run_id=self.run_id)
        if final_seq is not None and final_seq <= self.last_seq and not self.done:
            self.done = True
            await self.close(code=1000)


def _dumps(event: dict[str, Any]) -> str:
    return json.dumps(event, separators=(",", ":"), default=str)
