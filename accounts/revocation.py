"""The Redis set of revoked session ids: a fast path in front of the database.

A sorted set scored by the moment its entry stops mattering (the last access token of the
session has expired by then). The database row stays the source of truth: the authentication
class checks the row too, so a lost or unreachable set never lets a revoked session back in.

Open event streams, run sockets and terminals are bound to the session that opened them
(its ``sid``; a dashboard's Django session cookie is named ``cookie:<hash of its key>``).
Revoking a session (logout, ``DELETE /auth/sessions/{id}``, refresh reuse, revoke-all) and
signing a cookie session out also sends ``session.revoked`` to that session's Channels
group, so every stream it opened closes at once, in whichever process serves it.
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
from django.contrib.auth.signals import user_logged_out
from django.dispatch import receiver
from django_redis import get_redis_connection
from redis.exceptions import RedisError

from common.logging import get_logger

logger = get_logger(__name__)

REVOKED_SIDS_KEY = "aiflow:accounts:revoked_sids"


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


def cookie_session_sid(session_key: str) -> str:
    """The ``sid`` standing for a Django session cookie (never the key itself)."""
    return "cookie:" + hashlib.sha256(session_key.encode("utf-8")).hexdigest()[:40]


def user_cookie_group_name(user_id: int) -> str:
    """The Channels group of everything streaming under any dashboard cookie of a user."""
    return f"cookies-of-user-{int(user_id)}"


def stream_groups(sid: str, user_id: int | None) -> list[str]:
    """The groups a stream or socket opened under ``sid`` joins to hear of its revocation.

    A device session has its own group. A cookie session cannot be found again by its sid
    when every session of the user is revoked (only its hash is known), so its streams also
    join the user's cookie group, which ``user_cookie_streams_close`` signals.
    """
    if not sid:
        return []
    groups = [session_group_name(sid)]
    if sid.startswith("cookie:") and user_id is not None:
        groups.append(user_cookie_group_name(user_id))
    return groups


def user_cookie_streams_close(user_id: int) -> None:
    """Tell every stream opened under any dashboard cookie of ``user_id`` to close."""
    _groups_send([user_cookie_group_name(user_id)], sid="cookie:*")


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


@receiver(user_logged_out)
def _cookie_session_signed_out(sender: Any, request: Any = None, **_: Any) -> None:
    session = getattr(request, "session", None)
    key = getattr(session, "session_key", None)
    if key:
        session_streams_close([cookie_session_sid(key)])


def request_sid(request: Any) -> str:
    """The ``sid`` a DRF request was authenticated under ("" when it has none)."""
    session = getattr(request, "auth_session", None)  # set by SessionJWTAuthentication
    if session is not None:
        return str(session.pk)
    cookie = getattr(request, "session", None)
    key = getattr(cookie, "session_key", None)
    if getattr(request, "auth", None) is None and key:
        return cookie_session_sid(key)
    return ""


def session_is_live(sid: str) -> bool:
    """False once the device session ``sid`` is revoked (the database decides).

    A cookie session cannot be looked up by its hash: it is ended by the sign-out signal.
    """
    from .models import UserSession

    if not sid or sid.startswith("cookie:"):
        return True
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
