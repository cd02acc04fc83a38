"""Two-factor authentication: TOTP enrolment, backup codes, the second login step, the staff
MFA rule."""

import base64
from datetime import datetime, timedelta
from typing import Any

import qrcode
import qrcode.image.svg
from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django_otp.plugins.otp_totp.models import TOTPDevice
from django_redis import get_redis_connection
from redis.exceptions import RedisError
from rest_framework_simplejwt.exceptions import TokenError

from common.errors import ApplicationError, Conflict, ServiceUnavailable
from common.logging import get_logger

from ..backup_codes import backup_code_digest, backup_code_generate
from ..errors import AuthenticationError, MfaRequired
from ..models import BackupCode, BackupCodeDevice, User, UserSession
from ..tokens import MfaToken, TokenPair
from .lockout import account_password_check, login_failed, login_lockout_clear
from .sessions import session_start, user_sessions_revoke_all

logger = get_logger(__name__)


def user_has_mfa(user: User) -> bool:
    """Whether ``user`` has a confirmed TOTP device."""
    return TOTPDevice.objects.filter(user=user, confirmed=True).exists()


def mfa_token_issue(*, user: User) -> str:
    """A short-lived token of type ``mfa`` for the second step."""
    token = MfaToken()
    token["user_id"] = str(user.id)
    return str(token)


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
        account_password_check(user=user, password=password)
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
