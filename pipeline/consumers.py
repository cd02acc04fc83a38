"""WebSocket ``/ws/runs/<id>/``: a run's progress events, the backlog and then live ones.

Authentication goes through the project's own ``REST_FRAMEWORK["DEFAULT_AUTHENTICATION_CLASSES"]``
(so a revoked device session is refused here exactly as on the REST API), with the JWT
access token taken from ``?token=`` or from the ``Sec-WebSocket-Protocol`` header
(``["bearer", "<token>"]``), or else from the Django session cookie. Only the owner of the
run's project is admitted; anyone else has the handshake refused, as for a missing run.
"""

import json
from typing import Any
from urllib.parse import parse_qs

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings
from django.contrib.auth.models import AnonymousUser
from django.http import HttpRequest
from rest_framework.exceptions import APIException
from rest_framework.request import Request
from rest_framework.settings import api_settings

from common.logging import get_logger

from .events import (
    FINAL_EVENT_TYPES,
    event_final_seq,
    event_list_after,
    event_serialize,
    run_get_for_owner,
    run_group_name,
)

logger = get_logger(__name__)

_BEARER_SUBPROTOCOL = "bearer"
_PAGE = 500


def token_from_scope(scope: dict[str, Any]) -> tuple[str | None, str | None]:
    """The access token a client offered, and the subprotocol to answer with (if any).

    ``?token=<jwt>`` in the query string, or the subprotocol pair ``bearer, <jwt>`` (browsers
    cannot set an Authorization header on a WebSocket).
    """
    query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
    if query.get("token"):
        return query["token"][0], None
    protocols = list(scope.get("subprotocols") or [])
    if _BEARER_SUBPROTOCOL in protocols:
        index = protocols.index(_BEARER_SUBPROTOCOL)
        if index + 1 < len(protocols):
            return protocols[index + 1], _BEARER_SUBPROTOCOL
    return None, None


def last_event_id_from_scope(scope: dict[str, Any]) -> int:
    """``?last_event_id=N`` (events up to N were seen already); 0 when absent or invalid."""
    query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
    try:
        return max(0, int(query.get("last_event_id", ["0"])[0]))
    except ValueError:
        return 0


def _request_from_scope(scope: dict[str, Any], token: str | None) -> HttpRequest:
    """A plain ``HttpRequest`` carrying what the authentication classes look at."""
    request = HttpRequest()
    request.method = "GET"
    request.path = scope.get("path", "")
    headers = {
        name.decode("latin-1").lower(): value.decode("latin-1")
        for name, value in scope.get("headers", [])
    }
    client = scope.get("client") or ("", 0)
    request.META.update(
        {
            "REMOTE_ADDR": client[0],
            "HTTP_USER_AGENT": headers.get("user-agent", ""),
            "HTTP_HOST": headers.get("host", "localhost"),
            "SERVER_NAME": "localhost",
            "SERVER_PORT": "80",
        }
    )
    if token:
        request.META["HTTP_AUTHORIZATION"] = f"Bearer {token}"
    if scope.get("session") is not None:
        request.session = scope["session"]
    request.user = scope.get("user") or AnonymousUser()
    if "django_otp.middleware.OTPMiddleware" in settings.MIDDLEWARE:
        # Lets an MFA-aware session authentication see whether the session passed its OTP step.
        from django_otp.middleware import OTPMiddleware

        OTPMiddleware(lambda req: None)(request)
    return request


def authenticate_scope(scope: dict[str, Any], token: str | None) -> Any:
    """The authenticated user of a WebSocket handshake, or ``None``.

    Runs the configured DRF authentication classes; an offered token that does not validate
    is a refusal even when a session cookie is present.
    """
    request = Request(
        _request_from_scope(scope, token),
        authenticators=[cls() for cls in api_settings.DEFAULT_AUTHENTICATION_CLASSES],  # type: ignore[operator]
    )
    try:
        user = request.user
    except APIException:
        return None
    if user is None or not user.is_authenticated:
        return None
    if token and request.auth is None:
        # The token was offered but only the session vouched for the user.
        return None
    return user


def _events_after(run_id: int, after_seq: int) -> list[dict[str, Any]]:
    return [
        event_serialize(e)
        for e in event_list_after(run_id=run_id, after_seq=after_seq, limit=_PAGE)
    ]


class RunEventsConsumer(AsyncWebsocketConsumer):
    """Streams one run's events (``{seq, type, at, payload}`` JSON text frames) to its owner.

    Subscribes to the run's group first, then sends the backlog from the table, so nothing
    published in between is missed; a live push that skips ahead of what was sent makes the
    consumer read the gap from the table. Closes (1000) after the final event.
    """

    run_id: int
    last_seq: int
    done: bool = False

    async def connect(self) -> None:
        run_id = int(self.scope["url_route"]["kwargs"]["run_id"])
        token, subprotocol = token_from_scope(self.scope)
        user = await database_sync_to_async(authenticate_scope)(self.scope, token)
        run = await database_sync_to_async(run_get_for_owner)(user=user, run_id=run_id)
        if run is None:
            logger.info("ws.run_events.refused", run_id=run_id)
            await self.close()
            return
        self.run_id = run_id
        self.last_seq = last_event_id_from_scope(self.scope)
        await self.channel_layer.group_add(run_group_name(run_id), self.channel_name)
        await self.accept(subprotocol)
        await self._catch_up()

    async def disconnect(self, code: int) -> None:
        if getattr(self, "run_id", None) is not None:
            await self.channel_layer.group_discard(run_group_name(self.run_id), self.channel_name)

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        """Clients have nothing to say on this socket; frames they send are ignored."""

    async def run_event(self, message: dict[str, Any]) -> None:
        """A pushed event (from ``publish`` on commit)."""
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
