"""Terminal tickets: single use, short-lived, bound to one user and one project.

Only a hash of a ticket is stored (Redis, with the TTL as expiry), so a Redis dump does not
hand out terminals. Consuming is one atomic ``GETDEL``: two sockets racing with the same
ticket cannot both win.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from dataclasses import dataclass
from functools import lru_cache

import redis
from django.conf import settings

_KEY_PREFIX = "aiflow:terminal:ticket:"


@dataclass(frozen=True)
class TicketClaim:
    """Who a consumed ticket was issued to, and for which project."""

    user_id: int
    project_id: int


@lru_cache(maxsize=4)
def _client(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, socket_connect_timeout=3, socket_timeout=5)


def redis_client() -> redis.Redis:
    """The Redis the terminal keeps its tickets and session counters in."""
    return _client(settings.REDIS_URL)


def ticket_key(ticket: str) -> str:
    """The Redis key of a ticket: a SHA-256 of it, never the ticket itself."""
    return _KEY_PREFIX + hashlib.sha256(ticket.encode("utf-8")).hexdigest()


def ticket_issue(*, user_id: int, project_id: int) -> str:
    """A new ticket for ``user_id`` on ``project_id``, valid ``TERMINAL_TICKET_TTL`` seconds."""
    ticket = secrets.token_urlsafe(32)
    payload = json.dumps({"user_id": int(user_id), "project_id": int(project_id)})
    redis_client().set(ticket_key(ticket), payload, ex=int(settings.TERMINAL_TICKET_TTL), nx=True)
    return ticket


def ticket_consume(*, ticket: str | None, project_id: int) -> TicketClaim | None:
    """Use up ``ticket``; its claim if it was valid for ``project_id``, else ``None``.

    A ticket presented for another project is burned all the same.
    """
    if not ticket or len(ticket) > 200:
        return None
    raw = redis_client().getdel(ticket_key(ticket))
    if raw is None:
        return None
    data = json.loads(raw)  # type: ignore[arg-type]
    if int(data["project_id"]) != int(project_id):
        return None
    return TicketClaim(user_id=int(data["user_id"]), project_id=int(data["project_id"]))
