"""Device sessions and their tokens: start, rotate, revoke, and the account changes that end
every session.

Session revocation is written to the database first (the source of truth) and then mirrored
into the Redis set the authentication class reads.
"""

import uuid
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth.password_validation import validate_password
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone
from rest_framework_simplejwt.exceptions import TokenError
from rest_framework_simplejwt.token_blacklist.models import BlacklistedToken, OutstandingToken
from social_django.models import Partial

from common.errors import ApplicationError
from common.logging import get_logger

from ..errors import AuthenticationError, LockedOut
from ..models import OAuthExchangeCode, User, UserSession
from ..revocation import session_streams_close
from ..tokens import (
    SID_CLAIM,
    SessionRefreshToken,
    TokenPair,
    build_pair,
    next_refresh_jti,
    refresh_expiry,
)
from ..user_agents import device_label
from .lockout import account_password_check, login_lockout_clear

logger = get_logger(__name__)


def _outstand(*, user: User, jti: str, token: str, issued_at: Any) -> None:
    """Record a refresh token in simplejwt's outstanding list (idempotent)."""
    OutstandingToken.objects.get_or_create(
        jti=jti,
        defaults={
            "user": user,
            "token": token,
            "created_at": issued_at,
            "expires_at": refresh_expiry(issued_at),
        },
    )


def _blacklist(*, jti: str) -> None:
    outstanding = OutstandingToken.objects.filter(jti=jti).first()
    if outstanding is not None:
        BlacklistedToken.objects.get_or_create(token=outstanding)


def session_start(
    *, user: User, ip: str | None, user_agent: str, mfa_verified: bool = False
) -> tuple[UserSession, TokenPair]:
    """A new device session for ``user`` and its first token pair.

    ``mfa_verified``: the sign-in passed a second factor (the session is marked with it).
    """
    now = timezone.now().replace(microsecond=0)
    jti = uuid.uuid4().hex
    with transaction.atomic():
        session = UserSession.objects.create(
            user=user,
            user_agent=user_agent[:512],
            device=device_label(user_agent),
            ip=ip,
            created_at=now,
            last_seen_at=now,
            refresh_jti=jti,
            refresh_issued_at=now,
            expires_at=refresh_expiry(now),
            mfa_verified_at=now if mfa_verified else None,
        )
        pair = build_pair(user_id=user.id, sid=str(session.id), refresh_jti=jti, issued_at=now)
        _outstand(user=user, jti=jti, token=pair.refresh, issued_at=now)
        User.objects.filter(pk=user.pk).update(last_login=now)
    logger.info("accounts.session.started", user_id=user.id, sid=str(session.id))
    return session, pair


def session_revoke(*, session: UserSession, reason: str) -> bool:
    """Revoke one session: its refresh and access tokens stop working at once.

    Returns False when it was already revoked.
    """
    now = timezone.now()
    with transaction.atomic():
        # Lock the row and read its live jti now: the caller's copy may predate a rotation.
        live_jti = (
            UserSession.objects.select_for_update()
            .filter(pk=session.pk)
            .values_list("refresh_jti", flat=True)
            .first()
        )
        changed = UserSession.objects.filter(pk=session.pk, revoked_at__isnull=True).update(
            revoked_at=now, revoked_reason=reason[:32]
        )
        if live_jti:
            _blacklist(jti=live_jti)
    sid = str(session.pk)
    transaction.on_commit(lambda: session_streams_close([sid]))
    if changed:
        logger.info("accounts.session.revoked", sid=sid, reason=reason)
    return changed == 1


def user_sessions_revoke_all(*, user: User, reason: str, keep_sid: str | None = None) -> int:
    """Revoke every live session of ``user`` but ``keep_sid``; returns how many were revoked.

    The device sessions (of tokens and of dashboard cookies alike) are revoked row by row,
    which closes the streams and terminals they opened; every dashboard cookie also ends by
    the raised ``user.session_epoch`` (part of their auth hash). A caller acting from a
    dashboard session keeps its own with ``django.contrib.auth.update_session_auth_hash``
    (and a device session: ``keep_sid``, or a new one); ``user`` carries the new epoch.
    """
    now = timezone.now()
    with transaction.atomic():
        sessions = UserSession.objects.select_for_update().filter(
            user=user, revoked_at__isnull=True
        )
        if keep_sid:
            sessions = sessions.exclude(pk=keep_sid)
        live = list(sessions.values_list("id", "refresh_jti"))
        UserSession.objects.filter(id__in=[sid for sid, _ in live]).update(
            revoked_at=now, revoked_reason=reason[:32]
        )
        for _, jti in live:
            _blacklist(jti=jti)
        User.objects.filter(pk=user.pk).update(session_epoch=F("session_epoch") + 1)
        user.session_epoch = User.objects.values_list("session_epoch", flat=True).get(pk=user.pk)
    sids = [str(sid) for sid, _ in live]
    transaction.on_commit(lambda: session_streams_close(sids))
    if sids:
        logger.info(
            "accounts.sessions.revoked_all", user_id=user.id, count=len(sids), reason=reason
        )
    return len(sids)


def _decode_refresh(raw: str) -> SessionRefreshToken:
    try:
        token = SessionRefreshToken(raw)  # type: ignore[arg-type]
    except TokenError as exc:
        raise AuthenticationError(
            "Refresh token is invalid or expired.", code="token_not_valid"
        ) from exc
    if not token.get(SID_CLAIM) or not token.get("jti"):
        raise AuthenticationError("Refresh token is invalid or expired.", code="token_not_valid")
    return token


def _session_of(token: SessionRefreshToken) -> UserSession:
    """The session a (well-signed) refresh token names, with its user; 401 when none fits."""
    sid = str(token[SID_CLAIM])
    try:
        uuid.UUID(sid)
    except ValueError as exc:
        raise AuthenticationError("Refresh token is invalid.", code="token_not_valid") from exc
    session = UserSession.objects.select_related("user").filter(pk=sid).first()
    if session is None or str(session.user_id) != str(token.get("user_id")):
        raise AuthenticationError("Refresh token is invalid.", code="token_not_valid")
    return session


def session_refresh(*, refresh: str, ip: str | None) -> TokenPair:
    """Rotate a refresh token: compare-and-set on the session's live jti.

    The winner of concurrent refreshes gets a new pair; the same token again within the
    grace window gets that very pair (rebuilt, never stored); any other presentation of an
    already rotated token is reuse and revokes the whole session.
    """
    token = _decode_refresh(refresh)
    session = _session_of(token)
    sid, jti = str(session.pk), str(token["jti"])
    if session.revoked_at is not None:
        if session.refresh_jti != jti:  # an already rotated token: reuse, whatever ended it
            raise AuthenticationError(
                "This refresh token was already used; the session has been signed out.",
                code="token_reused",
            )
        raise AuthenticationError("This session has been signed out.", code="session_revoked")
    if not session.user.is_active:
        raise AuthenticationError("This account is disabled.", code="user_inactive")
    if timezone.now() - session.created_at > timedelta(days=settings.ACCOUNTS_SESSION_MAX_DAYS):
        session_revoke(session=session, reason="max_age")
        raise AuthenticationError(
            "This session has expired; sign in again.", code="session_expired"
        )

    now = timezone.now().replace(microsecond=0)
    new_jti = next_refresh_jti(jti)
    with transaction.atomic():
        # The compare-and-set: one UPDATE, guarded by the jti it replaces. PostgreSQL re-checks
        # the guard after waiting on the row lock, so exactly one concurrent caller wins.
        won = UserSession.objects.filter(pk=sid, refresh_jti=jti, revoked_at__isnull=True).update(
            refresh_jti=new_jti,
            previous_refresh_jti=jti,
            refresh_issued_at=now,
            expires_at=refresh_expiry(now),
            last_seen_at=now,
            ip=ip,
        )
        if won:
            pair = build_pair(user_id=session.user_id, sid=sid, refresh_jti=new_jti, issued_at=now)
            _outstand(user=session.user, jti=new_jti, token=pair.refresh, issued_at=now)
            _blacklist(jti=jti)
            return pair

    current = UserSession.objects.get(pk=sid)
    grace = timedelta(seconds=settings.ACCOUNTS_REFRESH_GRACE_SECONDS)
    if (
        current.revoked_at is None
        and current.previous_refresh_jti == jti
        and current.refresh_jti == new_jti
        and timezone.now() - current.refresh_issued_at <= grace
    ):
        return build_pair(
            user_id=current.user_id,
            sid=sid,
            refresh_jti=current.refresh_jti,
            issued_at=current.refresh_issued_at,
        )
    session_revoke(session=current, reason="refresh_reuse")
    logger.warning("accounts.refresh.reuse_detected", sid=sid, user_id=current.user_id)
    raise AuthenticationError(
        "This refresh token was already used; the session has been signed out.",
        code="token_reused",
    )


def session_logout(*, refresh: str) -> None:
    """Sign out the session a refresh token belongs to."""
    session_revoke(session=_session_of(_decode_refresh(refresh)), reason="logout")


# --- Account changes that end every session -------------------------------------------------


def user_password_change(*, user: User, current_password: str, new_password: str) -> None:
    """Change the password (validators apply); every session of the user is revoked.

    A wrong current password counts as a failed sign-in of the account (the same lockout),
    and a locked account cannot change its password even with the right one (``LockedOut``):
    a stolen session is no way to guess the password without limit.
    """
    try:
        account_password_check(user=user, password=current_password)
    except LockedOut:
        raise
    except ApplicationError as exc:
        raise ApplicationError("The current password is wrong.", code=exc.code) from exc
    login_lockout_clear(user=user)
    validate_password(new_password, user=user)
    with transaction.atomic():
        user.set_password(new_password)
        user.save(update_fields=["password"])
        user_sessions_revoke_all(user=user, reason="password_changed")


def user_deactivate(*, user: User) -> None:
    """Deactivate an account; its sessions and tokens stop working at once."""
    with transaction.atomic():
        user.is_active = False
        user.save(update_fields=["is_active"])
        user_sessions_revoke_all(user=user, reason="deactivated")


# --- Housekeeping ---------------------------------------------------------------------------


def accounts_expire(*, keep_days: int = 30) -> dict[str, int]:
    """Delete long-dead sessions, spent or expired exchange codes, expired outstanding tokens,
    and OAuth sign-ins left paused for a day."""
    now = timezone.now()
    cutoff = now - timedelta(days=keep_days)
    sessions, _ = UserSession.objects.filter(
        Q(revoked_at__lt=cutoff) | Q(expires_at__lt=cutoff)
    ).delete()
    codes, _ = OAuthExchangeCode.objects.filter(
        Q(expires_at__lt=now) | Q(used_at__isnull=False)
    ).delete()
    tokens, _ = OutstandingToken.objects.filter(expires_at__lt=now).delete()
    # OAuth sign-ins paused for the account's password and never finished.
    partials, _ = Partial.objects.filter(timestamp__lt=now - timedelta(days=1)).delete()
    return {
        "sessions": sessions,
        "codes": codes,
        "tokens": tokens,
        "oauth_partials": partials,
    }
