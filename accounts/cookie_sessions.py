"""A browser's session cookie is worth exactly as much as the device session behind it.

Every Django sign-in (``django.contrib.auth.login``: the sign-in form, OAuth, the test
client's ``force_login``) opens a device session (a ``UserSession``, listed on the Account
page and under ``GET /auth/sessions`` like the API's) and keeps its id in the Django session.
Every path that admits a cookie asks ``cookie_session_live`` whether that device session is
still live (not revoked, not past its expiry, the same user):

- ``LiveCookieSessionMiddleware``, right after Django's authentication middleware, signs a
  cookie whose device session ended out at its first request, whatever it asks for: the
  API through DRF's session authentication, the admin, the dashboard pages, SSE streams,
  file and zip downloads and the ticket endpoints all see an anonymous request;
- ``accounts.authentication.OTPSessionAuthentication`` and the admin site ask again (the
  answer is kept on the request, so it costs one query);
- ``LiveCookieAuthMiddleware`` does the same for WebSocket handshakes (Channels'
  ``AuthMiddlewareStack`` without the check would let the cookie through);
- streams and tickets opened from a cookie are bound to its device session's id
  (``accounts.revocation.request_sid``), so revoking it closes them at once and refuses
  their tickets.

Signing a cookie out (``django.contrib.auth.logout``: the dashboard's sign-out, the admin's
log-out, ``POST /auth/logout`` without a refresh token) revokes its device session too, so
the same cookie replayed from a copy gets nowhere either.
"""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

from channels.auth import AuthMiddleware
from channels.db import database_sync_to_async
from channels.sessions import CookieMiddleware, SessionMiddleware
from django.conf import settings
from django.contrib.auth import logout
from django.contrib.auth.models import AnonymousUser
from django.contrib.auth.signals import user_logged_in, user_logged_out
from django.db.models import F
from django.db.models.functions import Least
from django.dispatch import receiver
from django.http import HttpRequest
from django.utils import timezone

from common.logging import get_logger

from .models import User, UserSession
from .revocation import PAGE_SESSION_KEY

logger = get_logger(__name__)

__all__ = [
    "PAGE_SESSION_KEY",
    "LiveCookieAuthMiddleware",
    "LiveCookieAuthMiddlewareStack",
    "LiveCookieSessionMiddleware",
    "cookie_session_id",
    "cookie_session_live",
    "cookie_session_mark_mfa",
    "cookie_session_start",
    "device_session_live",
]
# Where the answer of ``cookie_session_live`` is kept on a request (asked more than once).
_VERDICT = "_accounts_cookie_session_live"
# A live cookie's device session is marked as seen at most this often.
_TOUCH_EVERY = timedelta(seconds=60)


def cookie_session_id(session: Any) -> str | None:
    """The id of the device session behind a Django session (``request.session``), if any."""
    value = session.get(PAGE_SESSION_KEY) if session is not None else None
    return str(value) if value else None


def cookie_session_start(
    request: HttpRequest, user: User, *, mfa_verified: bool = False
) -> UserSession:
    """Open the device session of this browser's sign-in and keep its id in the cookie.

    ``mfa_verified``: this browser passed the MFA step (staff need it for staff endpoints).
    """
    from .services import session_start
    from .throttling import client_ip_address

    session, _ = session_start(
        user=user,
        ip=client_ip_address(request),
        user_agent=request.META.get("HTTP_USER_AGENT", "")[:512],
        mfa_verified=mfa_verified,
    )
    request.session[PAGE_SESSION_KEY] = str(session.pk)
    request.__dict__.pop(_VERDICT, None)
    return session


def cookie_session_mark_mfa(request: HttpRequest) -> None:
    """Note on this browser's device session that it just passed the MFA step."""
    sid = cookie_session_id(request.session)
    if sid:
        UserSession.objects.filter(pk=sid).update(mfa_verified_at=timezone.now())


def device_session_live(*, sid: str | None, user_id: Any) -> bool:
    """True while device session ``sid`` of user ``user_id`` is neither revoked nor expired.

    The database row decides, read each time. A live session
    is marked as seen (at most once a minute), which also moves its expiry on by the
    refresh lifetime, never past ``ACCOUNTS_SESSION_MAX_DAYS`` after it started: a browser
    in use stays listed (and can be signed out from elsewhere) as long as it is used.
    """
    if not sid or user_id is None:
        return False
    try:
        uuid.UUID(str(sid))
    except ValueError:
        return False
    now = timezone.now()
    seen = (
        UserSession.objects.filter(
            pk=sid, user_id=user_id, revoked_at__isnull=True, expires_at__gt=now
        )
        .values_list("last_seen_at", flat=True)
        .first()
    )
    if seen is None:
        return False
    if now - seen > _TOUCH_EVERY:
        UserSession.objects.filter(pk=sid).update(
            last_seen_at=now,
            expires_at=Least(
                now + timedelta(days=settings.ACCOUNTS_REFRESH_TOKEN_DAYS),
                F("created_at") + timedelta(days=settings.ACCOUNTS_SESSION_MAX_DAYS),
            ),
        )
    return True


def cookie_session_live(request: HttpRequest) -> bool:
    """The one check every cookie-admitting path makes: is this request's signed-in user's
    device session (the one its sign-in opened) still live?

    False for an anonymous request or a session without a device session. The answer is
    kept on the request.
    """
    verdict = request.__dict__.get(_VERDICT)
    if verdict is not None:
        return bool(verdict)
    user = getattr(request, "user", None)
    verdict = bool(
        user is not None
        and user.is_authenticated
        and user.is_active
        and device_session_live(sid=cookie_session_id(request.session), user_id=user.pk)
    )
    request.__dict__[_VERDICT] = verdict
    return verdict


class LiveCookieSessionMiddleware:
    """Signs out, at its first request, a cookie whose device session has ended.

    Placed after ``AuthenticationMiddleware``: the request goes on as an anonymous one (the
    API answers 401, the admin and the pages send it to sign in), and the cookie's Django
    session is flushed so it never comes back.
    """

    sync_capable = True
    async_capable = False  # the request chain runs in one worker thread (config.http)

    def __init__(self, get_response: Any) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> Any:
        if settings.SESSION_COOKIE_NAME in request.COOKIES:
            user = getattr(request, "user", None)
            if user is not None and user.is_authenticated and not cookie_session_live(request):
                logger.info("accounts.cookie_session.ended", user_id=user.pk)
                logout(request)
        return self.get_response(request)


def _scope_user_live(scope: dict[str, Any]) -> Any:
    user = scope["user"]._wrapped
    if not (user.is_authenticated and user.is_active):
        return user
    if device_session_live(sid=cookie_session_id(scope["session"]), user_id=user.pk):
        return user
    return AnonymousUser()


class LiveCookieAuthMiddleware(AuthMiddleware):
    """Channels' ``AuthMiddleware`` with the same check: a WebSocket handshake carrying a
    cookie whose device session ended gets ``AnonymousUser`` in ``scope["user"]``."""

    async def resolve_scope(self, scope: dict[str, Any]) -> None:
        await super().resolve_scope(scope)
        scope["user"]._wrapped = await database_sync_to_async(_scope_user_live)(scope)


def LiveCookieAuthMiddlewareStack(inner: Any) -> Any:  # noqa: N802 (named like Channels' own)
    """Cookies, Django sessions and ``LiveCookieAuthMiddleware`` in front of ``inner``."""
    return CookieMiddleware(SessionMiddleware(LiveCookieAuthMiddleware(inner)))


# --- signing in and out -----------------------------------------------------------------------


@receiver(user_logged_in)
def _cookie_signed_in(sender: Any, request: Any = None, user: Any = None, **_: Any) -> None:
    """Every Django sign-in opens the browser's device session (a new one each time)."""
    session = getattr(request, "session", None)
    if session is None or user is None:
        return
    previous = cookie_session_id(session)
    cookie_session_start(request, user)
    if previous:
        _revoke_quietly(previous, user_id=user.pk, reason="signed_in_again")


@receiver(user_logged_out)
def _cookie_signed_out(sender: Any, request: Any = None, user: Any = None, **_: Any) -> None:
    """Signing a cookie out revokes its device session (when it is still live)."""
    sid = cookie_session_id(getattr(request, "session", None))
    if sid and user is not None:
        _revoke_quietly(sid, user_id=user.pk, reason="logout")


def _revoke_quietly(sid: str, *, user_id: Any, reason: str) -> None:
    from .services import session_revoke

    try:
        uuid.UUID(str(sid))
    except ValueError:
        return
    session = UserSession.objects.filter(pk=sid, user_id=user_id, revoked_at__isnull=True).first()
    if session is not None:
        session_revoke(session=session, reason=reason)
