"""Registration and email verification: the account, and the link that proves its address."""

import contextlib
import smtplib
from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.auth.password_validation import validate_password
from django.core import signing
from django.core.mail import send_mail
from django.db import IntegrityError, transaction
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone

from common.errors import ApplicationError, Conflict, ServiceUnavailable
from common.logging import get_logger

from ..models import User
from .lockout import account_password_check

logger = get_logger(__name__)


# --- Registration ---------------------------------------------------------------------------


def user_register(*, username: str, email: str, password: str) -> User:
    """Create a user after Django's password validators and mail the verification link.

    The email is stored in lower case; uniqueness is on its canonical form. The account may
    sign in with its password at once, verified or not; OAuth linking waits for the
    verification (see ``oauth.associate_by_verified_email``), and an account nobody verifies
    is deleted after ACCOUNTS_UNVERIFIED_DAYS (``unverified_accounts_expire``).
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
        "unverified_days": settings.ACCOUNTS_UNVERIFIED_DAYS,
        "reset_link": f"{settings.PUBLIC_BASE_URL}{reverse('page-password-reset')}",
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


def email_verification_claim(*, token: str) -> User:
    """The account a verification link names, when the link is good (nothing is spent).

    The token is signed (SECRET_KEY, its own salt), expires after
    ACCOUNTS_EMAIL_VERIFICATION_HOURS, and names the canonical address it was sent to: a
    changed address makes it void.
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
    user = (
        User.objects.filter(pk=uid, email_canonical=email).first()
        if isinstance(uid, int) and isinstance(email, str)
        else None
    )
    if user is None:  # the account is gone or its address changed since the link was sent
        raise ApplicationError(
            "This verification link is not valid.", code="verification_link_invalid"
        )
    return user


def _link_used() -> ApplicationError:
    return ApplicationError(
        "This verification link was already used; the address is verified.",
        code="verification_link_used",
    )


def email_verify(*, token: str, password: str = "", signed_in_user: User | None = None) -> User:
    """Verify the address a link names, for someone who proves they hold the account.

    Following the link proves only that its reader gets the mail: a mail scanner does, and
    so does the address's owner when someone else registered it with a password they chose.
    So the link verifies nothing by itself: the person confirming gives the account's
    password, or is signed in as the account (``signed_in_user``). A wrong password counts
    as a failed sign-in (the account's lockout). Spending the link is one conditional
    UPDATE, so two confirmations at once verify once and the second is told it was used.
    """
    user = email_verification_claim(token=token)
    if user.email_verified:
        raise _link_used()
    if signed_in_user is None or signed_in_user.pk != user.pk:
        if not password:
            raise ApplicationError(
                "Confirm with the account's password (or open the link where you are signed "
                "in to the account).",
                code="password_required",
            )
        account_password_check(user=user, password=password)
    spent = User.objects.filter(
        pk=user.pk, email_canonical=user.email_canonical, email_verified_at__isnull=True
    ).update(email_verified_at=timezone.now())
    if not spent:
        raise _link_used()
    user.refresh_from_db(fields=["email_verified_at"])
    logger.info("accounts.email.verified", user_id=user.id)
    return user


# --- Accounts nobody verified ---------------------------------------------------------------


def unverified_accounts_expire(*, now: datetime | None = None) -> int:
    """Delete the accounts whose address nobody verified within ACCOUNTS_UNVERIFIED_DAYS of
    registering (staff excepted); the address is free again. Returns how many went.

    Whoever registers an address they do not own cannot verify it, so the account they made
    would otherwise keep the address from its owner for good.
    """
    cutoff = (now or timezone.now()) - timedelta(days=settings.ACCOUNTS_UNVERIFIED_DAYS)
    expired = User.objects.filter(
        email_verified_at__isnull=True,
        date_joined__lt=cutoff,
        is_staff=False,
        is_superuser=False,
    )
    deleted = 0
    for pk in list(expired.values_list("pk", flat=True)):
        with transaction.atomic():
            # Locked and asked again: an address verified meanwhile keeps its account.
            user = expired.select_for_update().filter(pk=pk).first()
            if user is not None:
                user.delete()
                deleted += 1
    if deleted:
        logger.info("accounts.unverified.expired", count=deleted)
    return deleted
