"""Password reset by email, with Django's own form, mail and tokens (``default_token_generator``).

The link is mailed through the same mail backend as the verification link, built on
PUBLIC_BASE_URL (never the request's Host header). Its token is Django's: it expires after
``PASSWORD_RESET_TIMEOUT`` (ACCOUNTS_PASSWORD_RESET_MINUTES) and works once, since it is
derived from the password it replaces. A reset revokes every session of the account (device
sessions and dashboard cookies, with their streams and terminals), marks the address
verified (the link reached it, and the new password is its reader's), and clears the
account's failed sign-ins.
"""

from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.contrib.auth.forms import PasswordResetForm
from django.contrib.auth.password_validation import validate_password
from django.contrib.auth.tokens import default_token_generator
from django.db import transaction
from django.utils import timezone
from django.utils.encoding import force_str
from django.utils.http import urlsafe_base64_decode
from limits.errors import StorageError

from common.errors import ApplicationError
from common.logging import get_logger

from ..models import User
from ..ratelimit import limiter, rate
from .lockout import login_lockout_clear
from .sessions import user_sessions_revoke_all

logger = get_logger(__name__)


class AccountPasswordResetForm(PasswordResetForm):
    """Django's reset form, finding the account by its canonical email like every lookup."""

    def get_users(self, email: str) -> Any:
        users = User.objects.with_email(email).filter(is_active=True)
        return (user for user in users if user.has_usable_password() and _mail_allowed(user))


def _mail_allowed(user: User) -> bool:
    """At most RATE_LIMIT_PASSWORD_RESET mails per account, whoever asks: nobody can flood
    an inbox through this form (refused quietly, like an unknown address)."""
    try:
        allowed = limiter().hit(
            rate(settings.ACCOUNTS_RATE_LIMITS["password_reset"]), "reset-mail", f"user:{user.pk}"
        )
    except StorageError:
        return False
    if not allowed:
        logger.info("accounts.password_reset.mail_capped", user_id=user.pk)
    return bool(allowed)


def password_reset_request(*, email: str) -> None:
    """Mail a reset link to the active account using ``email``, if there is one.

    The answer never says whether there is: the caller tells everyone the same thing.
    """
    form = AccountPasswordResetForm(data={"email": email})
    if not form.is_valid():
        return
    form.save(
        domain_override=urlsplit(settings.PUBLIC_BASE_URL).netloc,
        subject_template_name="accounts/email/password_reset_subject.txt",
        email_template_name="accounts/email/password_reset.txt",
        token_generator=default_token_generator,
        extra_email_context={
            "base_url": settings.PUBLIC_BASE_URL,
            "minutes": settings.ACCOUNTS_PASSWORD_RESET_MINUTES,
        },
    )
    logger.info("accounts.password_reset.requested")


def password_reset_user(*, uidb64: str, token: str) -> User:
    """The active account a reset link (its ``uid`` and ``token``) is good for."""
    try:
        uid = int(force_str(urlsafe_base64_decode(str(uidb64 or ""))))
    except (TypeError, ValueError, OverflowError):
        uid = None
    user = User.objects.filter(pk=uid, is_active=True).first() if uid is not None else None
    if user is None or not default_token_generator.check_token(user, str(token or "")):
        raise ApplicationError(
            "This password-reset link is not valid: it expired, was used, or the password "
            "changed since. Ask for a new one.",
            code="reset_link_invalid",
        )
    return user


def password_reset_complete(*, user: User, new_password: str) -> None:
    """Set the new password (validators apply) of an account whose reset link was checked;
    every session of the account ends, its address counts as verified."""
    validate_password(new_password, user=user)
    with transaction.atomic():
        user_sessions_revoke_all(user=user, reason="password_reset")
        user.set_password(new_password)
        fields = ["password"]
        if user.email_verified_at is None:
            user.email_verified_at = timezone.now()
            fields.append("email_verified_at")
        user.save(update_fields=fields)
    login_lockout_clear(user=user)
    logger.info("accounts.password_reset.completed", user_id=user.pk)


def password_reset_confirm(*, uidb64: str, token: str, new_password: str) -> User:
    """``password_reset_user`` then ``password_reset_complete``: the API's confirm."""
    user = password_reset_user(uidb64=uidb64, token=token)
    password_reset_complete(user=user, new_password=new_password)
    return user
