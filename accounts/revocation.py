"""The Redis set of revoked session ids: a fast path in front of the database.

A sorted set scored by the moment its entry stops mattering (the last access token of the
session has expired by then). The database row stays the source of truth: the authentication
class checks the row too, so a lost or unreachable set never lets a revoked session back in.

Open event streams, run sockets and terminals are bound to the device session that opened
them (its ``sid``: a token's ``sid`` claim, or for a dashboard cookie the device session its
sign-in opened, see ``accounts.cookie_sessions``). Revoking a session (logout,
``DELETE /auth/sessions/{id}``, refresh reuse, revoke-all, a cookie signed out) also sends
``session.revoked`` to that session's Channels group, so every stream it opened closes at
once, in whichever process serves it.
"""

import functools
import hashlib
import time
import uuid
from collections.abc import Iterable
from datetime import timedelta
from typing import Any

from asgiref.sync import async_to_sync
from django.conf import settings
from django_redis import get_redis_connection
from redis.exceptions import RedisError

from common.logging import get_logger

logger = get_logger(__name__)

REVOKED_SIDS_KEY = "aiflow:accounts:revoked_sids"
#: The Django session key holding the id of the device session a cookie's sign-in opened.
PAGE_SESSION_KEY = "accounts_page_sid"


@functools.cache
def _redis() -> Any:
    """One client for the process: django-redis builds a new one on every call (its
    connections come from one pool either way), which showed in every request's profile."""
    return get_redis_connection("default")


def _keep_seconds() -> int:
    return int(timedelta(minutes=settings.ACCOUNTS_ACCESS_TOKEN_MINUTES).total_seconds()) + 60


def revoked_sids_add(sids: Iterable[str]) -> None:
    """Record ``sids`` as revoked (best effort; the database already says so)."""
    members = {str(sid): time.time() + _keep_seconds() for sid in sids}
    if not members:
        return
    try:
        _redis().zadd(REVOKED_SIDS_KEY, members)
    except RedisError:
        logger.warning("accounts.revoked_sids.unavailable", count=len(members))
    session_streams_close(list(members))


def session_group_name(sid: str) -> str:
    """The Channels group of everything streaming under session ``sid``."""
    return "session-" + hashlib.sha256(str(sid).encode("utf-8")).hexdigest()[:40]


def stream_groups(sid: str) -> list[str]:
    """The groups a stream or socket opened under ``sid`` joins to hear of its revocation."""
    return [session_group_name(sid)] if sid else []


def session_streams_close(sids: list[str]) -> None:
    """Tell every stream opened under ``sids`` to close (best effort, at most once each)."""
    for sid in sids:
        _groups_send([session_group_name(sid)], sid=str(sid))


def _groups_send(groups: list[str], *, sid: str) -> None:
    from channels.layers import get_channel_layer

    layer = get_channel_layer()
    if layer is None:
        return
    for group in groups:
        try:
            async_to_sync(layer.group_send)(group, {"type": "session.revoked", "sid": sid})
        except Exception:  # the streams' own periodic check still ends them
            logger.warning("accounts.session_streams_close_failed", exc_info=True)


def request_sid(request: Any) -> str:
    """The device session a DRF request was authenticated under ("" when it has none).

    A token's session, or the device session behind a dashboard cookie.
    """
    session = getattr(request, "auth_session", None)  # set by SessionJWTAuthentication
    if session is not None:
        return str(session.pk)
    user = getattr(request, "user", None)
    if getattr(request, "auth", None) is None and user is not None and user.is_authenticated:
        value = getattr(request, "session", {}).get(PAGE_SESSION_KEY)
        return str(value) if value else ""
    return ""


def session_is_live(sid: str) -> bool:
    """False once the device session ``sid`` is revoked (the database decides); False for
    no session at all: every stream and ticket is bound to one."""
    from .models import UserSession

    if not sid:
        return False
    try:
        uuid.UUID(sid)
    except ValueError:
        return False
    if sid_is_revoked(sid):
        return False
    return UserSession.objects.filter(pk=sid, revoked_at__isnull=True).exists()


def sid_is_revoked(sid: str) -> bool:
    """True when the set lists ``sid``; False when it does not or Redis cannot answer."""
    try:
        return _redis().zscore(REVOKED_SIDS_KEY, str(sid)) is not None
    except RedisError:
        return False


def revoked_sids_prune() -> int:
    """Drop entries whose access tokens have all expired; returns how many went."""
    return int(_redis().zremrangebyscore(REVOKED_SIDS_KEY, 0, time.time()))
