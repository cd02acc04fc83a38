"""What revoking a device session does beyond its row, and whether a session is live.

The database row is the only record of a revocation: every check reads it (the access
token's session in ``accounts.authentication``, a dashboard cookie's in
``accounts.cookie_sessions``, a stream's in ``session_is_live``). A Redis set of revoked ids
once answered first, but a live session (nearly every request) paid its round trip and
still had its row read, so it went.

Open event streams, run sockets and terminals are bound to the device session that opened
them (its ``sid``: a token's ``sid`` claim, or for a dashboard cookie the device session its
sign-in opened, see ``accounts.cookie_sessions``). Revoking a session (logout,
``DELETE /auth/sessions/{id}``, refresh reuse, revoke-all, a cookie signed out) also sends
``session.revoked`` to that session's Channels group, so every stream it opened closes at
once, in whichever process serves it.
"""

import hashlib
import uuid
from typing import Any

from asgiref.sync import async_to_sync

from common.logging import get_logger

logger = get_logger(__name__)

#: The Django session key holding the id of the device session a cookie's sign-in opened.
PAGE_SESSION_KEY = "accounts_page_sid"


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
    return UserSession.objects.filter(pk=sid, revoked_at__isnull=True).exists()
