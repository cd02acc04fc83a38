"""DRF authentication: JWT access tokens bound to a live device session, and OTP-aware sessions.

``SessionJWTAuthentication`` accepts an access token only when it is well signed, unexpired,
of type ``access``, carries a ``sid``, its session is not revoked in the database (the source
of truth) and its user is active. The session row is loaded with its user in one query,
replacing simplejwt's user lookup; nothing else is asked (``accounts.revocation``).

``OTPSessionAuthentication`` admits a dashboard cookie only while the device session its
sign-in opened is live (``accounts.cookie_sessions``).
"""

import functools
import uuid
from datetime import timedelta
from typing import Any

from django.core.signals import setting_changed
from django.dispatch import receiver
from django.utils import timezone
from django_otp import user_has_device
from rest_framework.authentication import SessionAuthentication
from rest_framework.exceptions import AuthenticationFailed
from rest_framework.request import Request
from rest_framework_simplejwt.authentication import JWTAuthentication
from rest_framework_simplejwt.exceptions import InvalidToken, TokenError
from rest_framework_simplejwt.tokens import Token

from common.db import PrecompiledQuery

from .cookie_sessions import cookie_session_live
from .models import User, UserSession
from .tokens import SID_CLAIM

_TOUCH_EVERY = timedelta(seconds=60)
# The session and its user in one query, on every request: its SQL is compiled once.
_session_with_user = PrecompiledQuery(
    lambda sid: UserSession.objects.select_related("user").filter(pk=sid)
)


# Access tokens whose bytes passed simplejwt's checks, most recent first. Every check but the
# expiry gives the same answer for the same bytes (the signature over them, the claims in
# them), so a token sent again skips the decoding, which cost about a tenth of a request's
# CPU; its expiry is checked again on every use. The tokens held are no more secret than
# the signing key this process holds anyway, and live only minutes.
_VERIFIED_TOKENS = 4096
_SIMPLEJWT = JWTAuthentication()


@functools.lru_cache(maxsize=_VERIFIED_TOKENS)
def _token_verified(raw_token: bytes) -> Token:
    """simplejwt's validated token for ``raw_token`` (raises ``InvalidToken`` as it does)."""
    return _SIMPLEJWT.get_validated_token(raw_token)


@receiver(setting_changed)
def _forget_verified_tokens(*, setting: str, **_: Any) -> None:
    """A new signing key or token setting (tests) makes every earlier verdict stale."""
    if setting in {"SIMPLE_JWT", "SECRET_KEY"}:
        _token_verified.cache_clear()


class SessionJWTAuthentication(JWTAuthentication):
    """simplejwt's JWT authentication, plus the session and account checks."""

    # simplejwt looks the user model up in ``__init__``, and DRF makes a new instance for
    # every request; ``get_user`` below loads the user with its session and never uses it.
    user_model = User

    def __init__(self) -> None:
        pass

    def authenticate(self, request: Request) -> tuple[User, Token] | None:  # type: ignore[override]
        result = super().authenticate(request)
        if result is not None:
            request.auth_session = result[0]._auth_session  # type: ignore[attr-defined,union-attr]
        return result  # type: ignore[return-value]

    def get_validated_token(self, raw_token: bytes) -> Token:
        """simplejwt's checks (signature, expiry, type ``access``), one flat error for all."""
        try:
            token = _token_verified(bytes(raw_token))
            token.check_exp(current_time=timezone.now())
        except (InvalidToken, TokenError) as exc:
            raise AuthenticationFailed(
                "Token is invalid or expired.", code="token_not_valid"
            ) from exc
        return token

    def get_user(self, validated_token: Token) -> User:  # type: ignore[override]
        sid = validated_token.get(SID_CLAIM)
        user_id = validated_token.get("user_id")
        try:
            sid = uuid.UUID(str(sid))
        except ValueError as exc:
            raise AuthenticationFailed(
                "Token has no valid session.", code="token_not_valid"
            ) from exc
        session = _session_with_user.first(sid)
        if session is None or str(session.user_id) != str(user_id):
            raise AuthenticationFailed("Token has no valid session.", code="token_not_valid")
        if session.revoked_at is not None:
            raise AuthenticationFailed("This session has been signed out.", code="session_revoked")
        user = session.user
        if not user.is_active:
            raise AuthenticationFailed("User is inactive.", code="user_inactive")
        now = timezone.now()
        if now - session.last_seen_at > _TOUCH_EVERY:
            UserSession.objects.filter(pk=session.pk).update(last_seen_at=now)
        user._auth_session = session  # type: ignore[attr-defined]
        return user


class OTPSessionAuthentication(SessionAuthentication):
    """Django session (cookie) authentication for a cookie whose device session is live
    (``cookie_session_live``) and that passed the MFA step when its user has MFA on."""

    def authenticate(self, request: Request) -> tuple[Any, None] | None:
        result = super().authenticate(request)
        if result is None:
            return None
        if not cookie_session_live(request._request):
            return None
        user = result[0]
        is_verified = getattr(user, "is_verified", None)  # set by django_otp's OTPMiddleware
        if user_has_device(user) and not (is_verified is not None and is_verified()):
            return None
        return result
