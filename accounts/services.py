"""Writes of the accounts part: registration, email verification, login, device sessions,
rotation, MFA, the staff MFA rule, OAuth codes.

Every function is keyword-only and typed. Session revocation is written to the database first
(the source of truth) and then mirrored into the Redis set the authentication class reads.
Emails are compared in one way only, ``canonical_email`` (through ``User.objects.with_email``).
"""

import base64
import contextlib
import hashlib
import hmac
import secrets
import smtplib
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import qrcode
import qrcode.image.svg
from django.conf import settings
from django.contrib.auth import authenticate
from django.contrib.auth.password_validation import validate_password
from django.core import signing
from django.core.mail import send_mail
from django.db import IntegrityError, transaction
from django.db.models import F
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone
from django_otp.plugins.otp_totp.models import TOTPDevice
from django_redis import get_redis_connection
from limits.errors import StorageError
from redis.exceptions import RedisError
from rest_framework_simplejwt.exceptions import TokenError
from rest_framework_simplejwt.token_blacklist.models import BlacklistedToken, OutstandingToken

from common.errors import ApplicationError, Conflict, ServiceUnavailable
from common.logging import get_logger

from .backup_codes import backup_code_digest, backup_code_generate
from .errors import AuthenticationError, LockedOut, MfaRequired
from .models import (
    BackupCode,
    BackupCodeDevice,
    OAuthExchangeCode,
    User,
    UserSession,
    canonical_email,
)
from .ratelimit import limiter, rate, seconds_until_free
from .revocation import revoked_sids_add
from .tokens import (
    SID_CLAIM,
    MfaToken,
    SessionRefreshToken,
    TokenPair,
    build_pair,
    next_refresh_jti,
    refresh_expiry,
)
from .user_agents import device_label

logger = get_logger(__name__)


@dataclass(frozen=True)
class LoginResult:
    """Either a token pair (``pair``) or, with MFA on, an ``mfa_token`` to verify."""

    user: User
    pair: TokenPair | None = None
    mfa_token: str | None = None


# --- Registration ---------------------------------------------------------------------------


def user_register(*, username: str, email: str, password: str) -> User:
    """Create a user after Django's password validators and mail the verification link.

    The email is stored in lower case; uniqueness is on its canonical form. The account may
    sign in with its password at once, verified or not; only OAuth linking waits for the
    verification (see ``oauth.associate_by_verified_email``).
    """
    email = User.objects.normalize_email(email).lower()
    if User.objects.with_email(email).exists():
        raise ApplicationError("A user with that email already exists.", code="email_taken")
    if User.objects.filter(username__iexact=username).exists():
        raise ApplicationError("A user with that username already exists.", code="username_taken")
    validate_password(password, user=User(username=username, email=email))
    try:
        with transaction.atomic():
            user = User.objects.create_user(username=username, email=email, password=password)
            transaction.on_commit(lambda: _verification_mail_send_quietly(user=user))
    except IntegrityError as exc:  # a concurrent registration won the race
        raise ApplicationError(
            "A user with that email already exists.", code="email_taken"
        ) from exc
    logger.info("accounts.user.registered", user_id=user.id)
    return user


# --- Email verification ---------------------------------------------------------------------

_VERIFY_SALT = "accounts.email_verification"


def email_verification_token(*, user: User) -> str:
    """A signed, timestamped token naming the user and the address it proves."""
    return signing.dumps({"uid": user.pk, "email": user.email_canonical}, salt=_VERIFY_SALT)


def email_verification_link(*, user: User) -> str:
    """The link mailed to the user (PUBLIC_BASE_URL, never the request's Host header)."""
    path = reverse("auth-email-verify-link", args=[email_verification_token(user=user)])
    return f"{settings.PUBLIC_BASE_URL}{path}"


def email_verification_send(*, user: User) -> None:
    """Mail ``user`` the link that verifies their address (Django's email backend).

    Raises ``ServiceUnavailable`` when the mail server refuses or cannot be reached.
    """
    context = {
        "user": user,
        "link": email_verification_link(user=user),
        "hours": settings.ACCOUNTS_EMAIL_VERIFICATION_HOURS,
    }
    try:
        send_mail(
            subject="Verify your email address",
            message=render_to_string("accounts/email/verify_email.txt", context),
            from_email=None,
            recipient_list=[user.email],
        )
    except (smtplib.SMTPException, OSError) as exc:
        logger.warning("accounts.email.send_failed", user_id=user.id, error=type(exc).__name__)
        raise ServiceUnavailable(
            "The verification mail could not be sent; try again later.", code="mail_unavailable"
        ) from exc
    logger.info("accounts.email.verification_sent", user_id=user.id)


def _verification_mail_send_quietly(*, user: User) -> None:
    # At registration a mail failure must not undo the account: the user can ask again.
    with contextlib.suppress(ServiceUnavailable):
        email_verification_send(user=user)


def email_verification_resend(*, user: User) -> None:
    """Send the verification link again (rate-limited per user by the API's throttle)."""
    if user.email_verified:
        raise Conflict("This email address is already verified.", code="email_already_verified")
    email_verification_send(user=user)


def email_verify(*, token: str) -> User:
    """Mark the address a verification token names as verified; a token works once.

    The token is signed (SECRET_KEY, its own salt), expires after
    ACCOUNTS_EMAIL_VERIFICATION_HOURS, and names the canonical address it was sent to: a
    changed address makes it void. Spending it is one conditional UPDATE, so two clicks at
    once verify once and the second is told the link was used.
    """
    max_age = timedelta(hours=settings.ACCOUNTS_EMAIL_VERIFICATION_HOURS)
    try:
        data = signing.loads(str(token or ""), salt=_VERIFY_SALT, max_age=max_age)
    except signing.SignatureExpired as exc:
        raise ApplicationError(
            "This verification link has expired. Sign in and ask for a new one.",
            code="verification_link_expired",
        ) from exc
    except signing.BadSignature as exc:
        raise ApplicationError(
            "This verification link is not valid.", code="verification_link_invalid"
        ) from exc
    uid = data.get("uid") if isinstance(data, dict) else None
    email = data.get("email") if isinstance(data, dict) else None
    if not isinstance(uid, int) or not isinstance(email, str):
        raise ApplicationError(
            "This verification link is not valid.", code="verification_link_invalid"
        )
    spent = User.objects.filter(
        pk=uid, email_canonical=email, email_verified_at__isnull=True
    ).update(email_verified_at=timezone.now())
    user = User.objects.filter(pk=uid, email_canonical=email).first()
    if user is None:  # the account is gone or its address changed since the link was sent
        raise ApplicationError(
            "This verification link is not valid.", code="verification_link_invalid"
        )
    if not spent:
        raise ApplicationError(
            "This verification link was already used; the address is verified.",
            code="verification_link_used",
        )
    logger.info("accounts.email.verified", user_id=user.id)
    return user


# --- Sessions and tokens --------------------------------------------------------------------


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
    transaction.on_commit(lambda: revoked_sids_add([sid]))
    if changed:
        logger.info("accounts.session.revoked", sid=sid, reason=reason)
    return changed == 1


def user_sessions_revoke_all(*, user: User, reason: str, keep_sid: str | None = None) -> int:
    """Revoke every live session of ``user`` but ``keep_sid``; returns how many were revoked.

    The device (JWT) sessions are revoked row by row; every dashboard (cookie) session ends
    too, by raising ``user.session_epoch`` (part of their auth hash). A caller acting from a
    dashboard session keeps its own with ``django.contrib.auth.update_session_auth_hash``;
    ``user`` carries the new epoch for that.
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
    transaction.on_commit(lambda: revoked_sids_add(sids))
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


# --- Login and brute-force lockout ----------------------------------------------------------


def _lockout_key(*, email: str, user: User | None) -> str:
    """The account's counter when ``email`` names one; else one per canonical address.

    Keying on the account means no spelling of its address (case, width, compatibility
    forms) gets a counter of its own: they all resolve to the same row, or to none.
    """
    if user is None:
        user = User.objects.with_email(email).only("pk").first()
    if user is not None:
        return f"user:{user.pk}"
    return "email:" + hashlib.sha256(canonical_email(email).encode()).hexdigest()


def _lockout_item() -> Any:  # the account's failed sign-ins, in a moving window
    threshold = settings.ACCOUNTS_LOGIN_LOCKOUT_THRESHOLD
    return rate(f"{threshold} per {settings.ACCOUNTS_LOGIN_LOCKOUT_WINDOW_SECONDS} seconds")


def login_guard(*, email: str = "", user: User | None = None) -> None:
    """Refuse while the account (existing or not, alike) has too many recent failures."""
    item, key = _lockout_item(), _lockout_key(email=email, user=user)
    try:
        if not limiter().test(item, "login-fail", key):
            raise LockedOut(
                "Too many failed sign-in attempts. Try again later.",
                extra={"retry_after": seconds_until_free(item, "login-fail", key)},
            )
    except StorageError as exc:
        raise ServiceUnavailable(
            "Sign-in is temporarily unavailable.", code="rate_limit_unavailable"
        ) from exc


def login_failed(*, email: str = "", user: User | None = None) -> None:
    """Count one failed sign-in against ``user`` or the account ``email`` names."""
    try:
        limiter().hit(_lockout_item(), "login-fail", _lockout_key(email=email, user=user))
    except StorageError as exc:
        raise ServiceUnavailable(
            "Sign-in is temporarily unavailable.", code="rate_limit_unavailable"
        ) from exc


def login_lockout_clear(*, email: str = "", user: User | None = None) -> None:
    """Forget the failed sign-ins of ``user`` or ``email`` (after a complete sign-in)."""
    try:
        limiter().clear(_lockout_item(), "login-fail", _lockout_key(email=email, user=user))
    except StorageError:
        logger.warning("accounts.lockout.clear_failed")


def user_has_mfa(user: User) -> bool:
    """Whether ``user`` has a confirmed TOTP device."""
    return TOTPDevice.objects.filter(user=user, confirmed=True).exists()


def mfa_token_issue(*, user: User) -> str:
    """A short-lived token of type ``mfa`` for the second step."""
    token = MfaToken()
    token["user_id"] = str(user.id)
    return str(token)


def auth_login(*, email: str, password: str, ip: str | None, user_agent: str) -> LoginResult:
    """Check email and password; a session and tokens, or an MFA challenge."""
    login_guard(email=email)
    user = authenticate(email=email.strip(), password=password)
    if user is None:
        login_failed(email=email)
        logger.info("accounts.login.failed")
        raise AuthenticationError("Invalid email or password.", code="invalid_credentials")
    if user_has_mfa(user):
        # The failure count stays until the second factor passes too.
        return LoginResult(user=user, mfa_token=mfa_token_issue(user=user))
    login_lockout_clear(user=user)
    _, pair = session_start(user=user, ip=ip, user_agent=user_agent)
    return LoginResult(user=user, pair=pair)


# --- MFA ------------------------------------------------------------------------------------


def _looks_like_totp(code: str) -> bool:
    return code.strip().isdigit() and len(code.strip()) == 6


def _totp_verify(*, user: User, code: str, confirmed: bool = True) -> TOTPDevice | None:
    """Verify a TOTP code with the device row locked; a code never verifies twice."""
    with transaction.atomic():
        device = (
            TOTPDevice.objects.select_for_update()
            .filter(user=user, confirmed=confirmed)
            .order_by("-id")
            .first()
        )
        if device is not None and device.verify_token(code.strip()):
            return device
    return None


def second_factor_device(*, user: User, code: str) -> Any:
    """The device that accepted ``code`` (a TOTP code or an unused backup code), or None."""
    code = str(code or "")
    if _looks_like_totp(code):
        return _totp_verify(user=user, code=code)
    device = BackupCodeDevice.objects.filter(user=user).first()
    if device is not None and device.verify_token(code):
        return device
    return None


def second_factor_verify(*, user: User, code: str) -> bool:
    """A TOTP code or an unused backup code of ``user``."""
    return second_factor_device(user=user, code=code) is not None


def _mfa_claim(*, jti: str) -> tuple[str, str]:
    return f"aiflow:accounts:mfa:used:{jti}", f"aiflow:accounts:mfa:tries:{jti}"


def mfa_login_verify(
    *, mfa_token: str, code: str, ip: str | None, user_agent: str
) -> tuple[User, TokenPair]:
    """Second login step: the mfa token and a TOTP or backup code give a session."""
    try:
        token = MfaToken(mfa_token)  # type: ignore[arg-type]
    except TokenError as exc:
        raise AuthenticationError(
            "MFA token is invalid or expired.", code="token_not_valid"
        ) from exc
    user = User.objects.filter(pk=token.get("user_id"), is_active=True).first()
    if user is None:
        raise AuthenticationError("MFA token is invalid or expired.", code="token_not_valid")
    used_key, tries_key = _mfa_claim(jti=str(token["jti"]))
    ttl = settings.ACCOUNTS_MFA_TOKEN_MINUTES * 60
    redis = get_redis_connection("default")
    try:
        if redis.exists(used_key):
            raise AuthenticationError("MFA token was already used.", code="token_not_valid")
        tries = redis.incr(tries_key)
        redis.expire(tries_key, ttl)
    except RedisError as exc:
        raise ServiceUnavailable("Sign-in is temporarily unavailable.") from exc
    if tries > settings.ACCOUNTS_MFA_TOKEN_MAX_ATTEMPTS:
        raise AuthenticationError(
            "Too many wrong codes; sign in again.", code="mfa_attempts_exceeded"
        )
    if not second_factor_verify(user=user, code=code):
        login_failed(user=user)  # wrong second factors count toward the account lockout
        raise AuthenticationError("The code is not valid.", code="invalid_code")
    try:
        if not redis.set(used_key, "1", nx=True, ex=ttl):
            raise AuthenticationError("MFA token was already used.", code="token_not_valid")
    except RedisError as exc:
        raise ServiceUnavailable("Sign-in is temporarily unavailable.") from exc
    login_lockout_clear(user=user)
    _, pair = session_start(user=user, ip=ip, user_agent=user_agent, mfa_verified=True)
    return user, pair


def mfa_totp_setup(*, user: User) -> dict[str, str]:
    """Start TOTP enrolment: an unconfirmed device, its secret, otpauth URL and QR (SVG)."""
    if user_has_mfa(user):
        raise Conflict("MFA is already enabled.", code="mfa_enabled")
    with transaction.atomic():
        TOTPDevice.objects.filter(user=user, confirmed=False).delete()
        device = TOTPDevice.objects.create(user=user, name="authenticator", confirmed=False)
    url = device.config_url
    image = qrcode.make(url, image_factory=qrcode.image.svg.SvgPathImage)
    svg = image.to_string(encoding="unicode")
    secret = base64.b32encode(device.bin_key).decode().rstrip("=")
    return {"secret": secret, "otpauth_url": url, "qr_svg": svg}


def _backup_codes_replace(*, user: User) -> list[str]:
    codes = [backup_code_generate() for _ in range(settings.ACCOUNTS_BACKUP_CODE_COUNT)]
    with transaction.atomic():
        device, _ = BackupCodeDevice.objects.get_or_create(
            user=user, defaults={"name": "backup codes", "confirmed": True}
        )
        BackupCode.objects.filter(device=device).delete()
        BackupCode.objects.bulk_create(
            [BackupCode(device=device, digest=backup_code_digest(c)) for c in codes]
        )
    return codes


def _reauthenticate(*, user: User, password: str, signed_in_at: datetime | None) -> None:
    """The account's password again, or, for an account without one (created through a
    provider), a sign-in no older than ACCOUNTS_REAUTH_MINUTES.

    A wrong password counts toward the account lockout, so a stolen session cannot guess it.
    """
    if user.has_usable_password():
        login_guard(user=user)
        if not user.check_password(str(password or "")):
            login_failed(user=user)
            raise ApplicationError("The password is wrong.", code="invalid_password")
        return
    window = timedelta(minutes=settings.ACCOUNTS_REAUTH_MINUTES)
    if signed_in_at is None or timezone.now() - signed_in_at > window:
        raise ApplicationError(
            "This account has no password: sign in again with your provider, then turn MFA "
            f"on within {settings.ACCOUNTS_REAUTH_MINUTES} minutes.",
            code="reauthentication_required",
        )


def mfa_totp_confirm(
    *,
    user: User,
    code: str,
    password: str,
    signed_in_at: datetime | None = None,
    current_session: UserSession | None = None,
) -> list[str]:
    """Turn MFA on: the password (see ``_reauthenticate``) and a first code from the app.

    Every other session of the user is revoked: the device sessions but ``current_session``,
    and every dashboard session (a caller acting from one keeps it with
    ``update_session_auth_hash`` and marks it with ``django_otp.login``).
    ``current_session`` is marked as having passed MFA: its code was just checked.
    ``signed_in_at`` (default: ``current_session.created_at``) only matters for an account
    without a password. Returns the 10 backup codes, shown once.
    """
    if user_has_mfa(user):
        raise Conflict("MFA is already enabled.", code="mfa_enabled")
    if not TOTPDevice.objects.filter(user=user, confirmed=False).exists():
        raise ApplicationError("Start with /auth/mfa/totp/setup.", code="mfa_not_started")
    if signed_in_at is None and current_session is not None:
        signed_in_at = current_session.created_at
    _reauthenticate(user=user, password=password, signed_in_at=signed_in_at)
    if _totp_verify(user=user, code=str(code or ""), confirmed=False) is None:
        raise ApplicationError("The code is not valid.", code="invalid_code")
    keep_sid = str(current_session.pk) if current_session is not None else None
    with transaction.atomic():
        TOTPDevice.objects.filter(user=user, confirmed=False).update(confirmed=True)
        if current_session is not None:
            UserSession.objects.filter(pk=current_session.pk).update(mfa_verified_at=timezone.now())
        user_sessions_revoke_all(user=user, reason="mfa_enabled", keep_sid=keep_sid)
        codes = _backup_codes_replace(user=user)
    logger.info("accounts.mfa.enabled", user_id=user.id)
    return codes


def staff_mfa_require(*, user: User, mfa_passed: bool) -> None:
    """The rule for staff pages (the admin) and staff endpoints (``/admin/providers``).

    A staff account needs a confirmed MFA device, and the session or token in use must have
    passed the MFA step (``mfa_passed``). Raises ``MfaRequired`` saying which is missing.
    """
    if not user_has_mfa(user):
        raise MfaRequired(
            "Staff pages need two-factor authentication (MFA), which this account has not set "
            "up. Turn it on first (POST /auth/mfa/totp/setup, then /auth/mfa/totp/confirm), "
            "then sign in again with your authenticator code.",
            code="mfa_setup_required",
        )
    if not mfa_passed:
        raise MfaRequired(
            "This session did not pass the two-factor step. Sign out and sign in again with "
            "your authenticator code.",
            code="mfa_step_required",
        )


def mfa_backup_codes_regenerate(*, user: User, code: str) -> list[str]:
    """New backup codes (the old ones die), after a TOTP or backup code."""
    if not user_has_mfa(user):
        raise ApplicationError("MFA is not enabled.", code="mfa_not_enabled")
    if not second_factor_verify(user=user, code=code):
        raise ApplicationError("The code is not valid.", code="invalid_code")
    return _backup_codes_replace(user=user)


def mfa_disable(*, user: User, code: str) -> None:
    """Turn MFA off after a TOTP or backup code; every session of the user is revoked."""
    if not user_has_mfa(user):
        raise ApplicationError("MFA is not enabled.", code="mfa_not_enabled")
    if not second_factor_verify(user=user, code=code):
        raise ApplicationError("The code is not valid.", code="invalid_code")
    with transaction.atomic():
        TOTPDevice.objects.filter(user=user).delete()
        BackupCodeDevice.objects.filter(user=user).delete()
        user_sessions_revoke_all(user=user, reason="mfa_disabled")
    logger.info("accounts.mfa.disabled", user_id=user.id)


# --- Account changes that end every session -------------------------------------------------


def user_password_change(*, user: User, current_password: str, new_password: str) -> None:
    """Change the password (validators apply); every session of the user is revoked."""
    if not user.check_password(current_password):
        raise ApplicationError("The current password is wrong.", code="invalid_password")
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


# --- OAuth one-time exchange codes ----------------------------------------------------------


def _code_digest(code: str) -> str:
    return hashlib.sha256(code.encode()).hexdigest()


def pkce_s256(verifier: str) -> str:
    """The S256 code challenge of ``verifier`` (RFC 7636)."""
    digest = hashlib.sha256(verifier.encode("ascii", "replace")).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def oauth_exchange_code_create(*, user: User, code_challenge: str) -> str:
    """A one-time code (60 s by default) the API client trades for tokens with the PKCE
    verifier of ``code_challenge`` (S256, required)."""
    if not code_challenge:
        raise ApplicationError(
            "A client redirect needs a PKCE code_challenge.", code="code_challenge_required"
        )
    code = secrets.token_urlsafe(32)
    now = timezone.now()
    OAuthExchangeCode.objects.create(
        user=user,
        digest=_code_digest(code),
        code_challenge=code_challenge,
        created_at=now,
        expires_at=now + timedelta(seconds=settings.ACCOUNTS_OAUTH_EXCHANGE_CODE_SECONDS),
    )
    return code


def oauth_exchange_code_redeem(
    *, code: str, ip: str | None, user_agent: str, code_verifier: str = ""
) -> LoginResult:
    """Spend a one-time code: tokens, or an MFA challenge when the user has MFA on.

    The code is spent by the first attempt, right or wrong verifier alike; a code without a
    challenge (none is issued any more) is refused.
    """
    digest = _code_digest(str(code or ""))
    now = timezone.now()
    with transaction.atomic():
        spent = OAuthExchangeCode.objects.filter(
            digest=digest, used_at__isnull=True, expires_at__gt=now
        ).update(used_at=now)
        row = OAuthExchangeCode.objects.select_related("user").filter(digest=digest).first()
    if not spent or row is None or not row.user.is_active:
        raise AuthenticationError("The code is invalid or expired.", code="invalid_code")
    if not row.code_challenge or not hmac.compare_digest(
        pkce_s256(code_verifier), row.code_challenge
    ):
        raise AuthenticationError("The code verifier does not match.", code="invalid_code")
    user = row.user
    if user_has_mfa(user):
        return LoginResult(user=user, mfa_token=mfa_token_issue(user=user))
    _, pair = session_start(user=user, ip=ip, user_agent=user_agent)
    return LoginResult(user=user, pair=pair)


# --- Housekeeping ---------------------------------------------------------------------------


def accounts_expire(*, keep_days: int = 30) -> dict[str, int]:
    """Delete long-dead sessions, spent or expired exchange codes, expired outstanding tokens."""
    from django.db.models import Q

    from .revocation import revoked_sids_prune

    now = timezone.now()
    cutoff = now - timedelta(days=keep_days)
    sessions, _ = UserSession.objects.filter(
        Q(revoked_at__lt=cutoff) | Q(expires_at__lt=cutoff)
    ).delete()
    codes, _ = OAuthExchangeCode.objects.filter(
        Q(expires_at__lt=now) | Q(used_at__isnull=False)
    ).delete()
    tokens, _ = OutstandingToken.objects.filter(expires_at__lt=now).delete()
    pruned = revoked_sids_prune()
    return {"sessions": sessions, "codes": codes, "tokens": tokens, "revoked_sids": pruned}
