"""Terminal tickets: single use, short-lived, bound to one user, one project and the session
that asked for one (``common.websocket`` holds the mechanism, shared with the run sockets).
"""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings

from common.websocket import redis_client
from common.websocket import ticket_consume as _consume
from common.websocket import ticket_issue as _issue

KIND = "terminal"

__all__ = ["KIND", "TicketClaim", "redis_client", "ticket_consume", "ticket_issue"]


@dataclass(frozen=True)
class TicketClaim:
    """Who a consumed terminal ticket was issued to, for which project, from which session."""

    user_id: int
    project_id: int
    sid: str


def ticket_issue(*, user_id: int, project_id: int, sid: str) -> str:
    """A new ticket for ``user_id`` on ``project_id``, valid ``TERMINAL_TICKET_TTL`` seconds."""
    return _issue(
        kind=KIND,
        user_id=user_id,
        object_id=project_id,
        sid=sid,
        ttl=int(settings.TERMINAL_TICKET_TTL),
    )


def ticket_consume(*, ticket: str | None, project_id: int) -> TicketClaim | None:
    """Use up ``ticket``; its claim if it was valid for ``project_id``, else ``None``.

    A ticket presented for another project (or another kind of socket) is burned all the same.
    """
    claim = _consume(ticket=ticket, kind=KIND, object_id=project_id)
    if claim is None:
        return None
    return TicketClaim(user_id=claim.user_id, project_id=claim.object_id, sid=claim.sid)
