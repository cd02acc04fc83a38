"""What every WebSocket and event stream shares: the Origin check, single-use tickets, and
per-user caps on open streams.

Origin: a handshake is admitted only from an origin listed in ``CSRF_TRUSTED_ORIGINS``
(exactly, or by Django's ``*.`` subdomain pattern) or from the very host the socket was
opened on (the Origin's host and port equal the ``Host`` header, and that host is one of
``ALLOWED_HOSTS``). A sibling subdomain that ``ALLOWED_HOSTS`` would accept through a
leading dot is not the same origin and is refused.

Tickets: ``ticket_issue`` hands out a random ticket bound to a kind (``terminal``,
``run-events``), a user, an object and the session that asked for it; only its SHA-256
is stored in Redis with the TTL as expiry; ``ticket_consume`` is one ``GETDEL`` (two
sockets racing with one ticket cannot both win), and a ticket presented for another kind
or object is burned all the same.

Stream caps: each open stream holds a lease in a per-user sorted set scored by its expiry;
a lease is refreshed while its stream lives and expires by itself when a process died, so
a crash never locks a user out for longer than one lease TTL.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import time
import uuid
from dataclasses import dataclass
from functools import lru_cache
from typing import Any
from urllib.parse import urlsplit

import redis
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings
from django.http.request import validate_host

from common.logging import get_logger

logger = get_logger(__name__)

CLOSE_UNAUTHORIZED = 4401
CLOSE_FORBIDDEN = 4403
CLOSE_NOT_FOUND = 4404
CLOSE_TOO_MANY = 4429
CLOSE_UNAVAILABLE = 4503

_TICKET_PREFIX = "aiflow:ws:ticket:"
_LEASE_PREFIX = "aiflow:streams:"
# Drops expired leases, then adds this one if the user is under the limit: one atomic step.
_ACQUIRE = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[3]) then return 0 end
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[4])
redis.call('EXPIRE', KEYS[1], ARGV[5])
return 1
"""


@lru_cache(maxsize=4)
def _client(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, socket_connect_timeout=3, socket_timeout=5)


def redis_client() -> redis.Redis:
    """The Redis that holds tickets and stream leases."""
    return _client(settings.REDIS_URL)


# --- Origin --------------------------------------------------------------------------------


def header(scope: dict[str, Any], name: bytes) -> str | None:
    """One request header of an ASGI scope (the first, decoded as latin-1), or ``None``."""
    for key, value in scope.get("headers", []):
        if key.lower() == name:
            return str(value.decode("latin-1"))
    return None


def _trusted(origin: str) -> bool:
    parts = urlsplit(origin)
    for trusted in settings.CSRF_TRUSTED_ORIGINS:
        allowed = urlsplit(trusted.rstrip("/"))
        if allowed.scheme != parts.scheme:
            continue
        if allowed.netloc == parts.netloc:
            return True
        if allowed.netloc.startswith("*.") and parts.netloc.endswith(allowed.netloc[1:]):
            return True
    return False


def origin_allowed(origin: str | None, host: str | None) -> bool:
    """True for a trusted origin, or the same host the socket was opened on."""
    if not origin or origin == "null":
        return False
    parts = urlsplit(origin.rstrip("/"))
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return False
    if _trusted(origin.rstrip("/")):
        return True
    if not host or parts.netloc.lower() != host.lower():
        return False
    name = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    return validate_host(name, settings.ALLOWED_HOSTS)


def scope_origin_allowed(scope: dict[str, Any]) -> bool:
    """``origin_allowed`` for a WebSocket handshake."""
    return origin_allowed(header(scope, b"origin"), header(scope, b"host"))


class _OriginRefused(AsyncWebsocketConsumer):
    async def connect(self) -> None:
        logger.warning("ws.origin_refused", path=self.scope.get("path"))
        await self.close(code=CLOSE_FORBIDDEN, reason="origin not allowed")


class OriginCheckMiddleware:
    """ASGI middleware: every WebSocket handshake from a foreign Origin is closed (4403)."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.refuse = _OriginRefused.as_asgi()

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> Any:
        if scope["type"] == "websocket" and not scope_origin_allowed(scope):
            return await self.refuse(scope, receive, send)
        return await self.app(scope, receive, send)


# --- Tickets -------------------------------------------------------------------------------


@dataclass(frozen=True)
class TicketClaim:
    """Who a consumed ticket was issued to, for what, and from which session."""

    user_id: int
    kind: str
    object_id: int
    sid: str


def ticket_key(ticket: str) -> str:
    """The Redis key of a ticket: a SHA-256 of it, never the ticket itself."""
    return _TICKET_PREFIX + hashlib.sha256(ticket.encode("utf-8")).hexdigest()


def ticket_issue(*, kind: str, user_id: int, object_id: int, sid: str, ttl: int) -> str:
    """A new single-use ticket, valid ``ttl`` seconds."""
    ticket = secrets.token_urlsafe(32)
    payload = json.dumps(
        {"user_id": int(user_id), "kind": kind, "object_id": int(object_id), "sid": str(sid)}
    )
    redis_client().set(ticket_key(ticket), payload, ex=int(ttl), nx=True)
    return ticket


def ticket_consume(*, ticket: str | None, kind: str, object_id: int) -> TicketClaim | None:
    """Use up ``ticket``; its claim if it was issued for ``kind`` and ``object_id``."""
    if not ticket or len(ticket) > 200:
        return None
    raw = redis_client().getdel(ticket_key(ticket))
    if raw is None:
        return None
    data = json.loads(raw)  # type: ignore[arg-type]
    if data.get("kind") != kind or int(data["object_id"]) != int(object_id):
        return None
    return TicketClaim(
        user_id=int(data["user_id"]),
        kind=str(data["kind"]),
        object_id=int(data["object_id"]),
        sid=str(data.get("sid") or ""),
    )


def ticket_from_scope(scope: dict[str, Any]) -> str | None:
    """The ``?ticket=`` of a handshake's query string."""
    from urllib.parse import parse_qs

    query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
    return (query.get("ticket") or [None])[0]


# --- Stream caps -----------------------------------------------------------------------------


def stream_lease_acquire(*, kind: str, user_id: int, limit: int, ttl: float) -> str | None:
    """Count a new open stream of ``user_id``; its lease id, or ``None`` at the limit."""
    now = time.time()
    lease = uuid.uuid4().hex
    admitted = redis_client().eval(
        _ACQUIRE,
        1,
        f"{_LEASE_PREFIX}{kind}:{int(user_id)}",
        now,
        now + ttl,
        int(limit),
        lease,
        int(ttl) + 60,
    )
    if not admitted:
        logger.info("streams.cap_reached", kind=kind, user_id=user_id, limit=limit)
    return lease if admitted else None


def stream_lease_refresh(*, kind: str, user_id: int, lease: str, ttl: float) -> None:
    """Push a live stream's lease expiry ``ttl`` seconds ahead."""
    key = f"{_LEASE_PREFIX}{kind}:{int(user_id)}"
    pipe = redis_client().pipeline()
    pipe.zadd(key, {lease: time.time() + ttl}, xx=True)
    pipe.expire(key, int(ttl) + 60)
    pipe.execute()


def stream_lease_release(*, kind: str, user_id: int, lease: str) -> None:
    """Stop counting a stream that ended."""
    redis_client().zrem(f"{_LEASE_PREFIX}{kind}:{int(user_id)}", lease)
