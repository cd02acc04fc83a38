"""JWT types: access and refresh (simplejwt) carrying the session id, and the mfa token.

A pair is a pure function of (user, session, refresh jti, issue time): the access token's jti
is derived from the refresh jti, and the next refresh jti from the previous one. That is what
lets a refresh repeated inside the grace window answer with the very same pair without ever
storing a token.
"""

import hashlib
import hmac
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from rest_framework_simplejwt.tokens import AccessToken, RefreshToken, Token

SID_CLAIM = "sid"


def _derive(label: str, value: str) -> str:
    key = hashlib.sha256(f"accounts.tokens:{settings.SECRET_KEY}".encode()).digest()
    return hmac.new(key, f"{label}:{value}".encode(), hashlib.sha256).hexdigest()[:32]


def next_refresh_jti(previous_jti: str) -> str:
    """The jti of the refresh token rotated from ``previous_jti`` (deterministic)."""
    return _derive("rotate", previous_jti)


def access_jti_for(refresh_jti: str) -> str:
    """The jti of the access token issued alongside the refresh token ``refresh_jti``."""
    return _derive("access", refresh_jti)


class SessionRefreshToken(RefreshToken):
    """simplejwt's refresh token; reuse and revocation are judged by the session row.

    The blacklist is still written (rotated and revoked tokens are blacklisted), but decoding
    does not consult it: a blacklisted jti must reach the rotation service, which tells a
    grace-window retry from a reuse.
    """

    def check_blacklist(self) -> None:
        return None


class MfaToken(Token):
    """A short-lived proof that the password step passed; only ``/auth/mfa/verify`` takes it."""

    token_type = "mfa"  # noqa: S105  (a token type name, not a secret)

    @property  # type: ignore[override]
    def lifetime(self) -> timedelta:  # type: ignore[override]
        return timedelta(minutes=settings.ACCOUNTS_MFA_TOKEN_MINUTES)


@dataclass(frozen=True)
class TokenPair:
    """An access token and its refresh token, as strings."""

    access: str
    refresh: str

    def as_dict(self) -> dict[str, str]:
        return {"access": self.access, "refresh": self.refresh}


def _stamp(token: Token, *, payload: dict[str, Any], issued_at: datetime) -> str:
    token.set_exp(from_time=issued_at)
    token.set_iat(at_time=issued_at)
    token.payload.update(payload)
    return str(token)


def build_pair(*, user_id: int, sid: str, refresh_jti: str, issued_at: datetime) -> TokenPair:
    """The pair for one point of a session's chain; same inputs, same strings."""
    issued_at = issued_at.replace(microsecond=0)
    common = {"user_id": str(user_id), SID_CLAIM: str(sid)}
    refresh = SessionRefreshToken()
    refresh_str = _stamp(refresh, payload={**common, "jti": refresh_jti}, issued_at=issued_at)
    access = AccessToken()
    access_str = _stamp(
        access, payload={**common, "jti": access_jti_for(refresh_jti)}, issued_at=issued_at
    )
    return TokenPair(access=access_str, refresh=refresh_str)


def refresh_expiry(issued_at: datetime) -> datetime:
    """When a refresh token issued at ``issued_at`` expires."""
    return issued_at.replace(microsecond=0) + timedelta(days=settings.ACCOUNTS_REFRESH_TOKEN_DAYS)
