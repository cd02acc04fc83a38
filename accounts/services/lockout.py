"""Brute-force lockout: failed sign-ins counted per account in a moving window."""

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from django.conf import settings
from limits.errors import StorageError

from common.errors import ApplicationError, ServiceUnavailable
from common.logging import get_logger

from ..errors import LockedOut
from ..models import User, canonical_email
from ..ratelimit import limiter, rate, seconds_until_free

logger = get_logger(__name__)


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


@contextmanager
def _counter_reachable() -> Iterator[None]:
    """Sign-in waits for the failure counter: its store unreachable is a 503, never a pass."""
    try:
        yield
    except StorageError as exc:
        raise ServiceUnavailable(
            "Sign-in is temporarily unavailable.", code="rate_limit_unavailable"
        ) from exc


def login_guard(*, email: str = "", user: User | None = None) -> None:
    """Refuse while the account (existing or not, alike) has too many recent failures."""
    item, key = _lockout_item(), _lockout_key(email=email, user=user)
    with _counter_reachable():
        if not limiter().test(item, "login-fail", key):
            raise LockedOut(
                "Too many failed sign-in attempts. Try again later.",
                extra={"retry_after": seconds_until_free(item, "login-fail", key)},
            )


def login_failed(*, email: str = "", user: User | None = None) -> None:
    """Count one failed sign-in against ``user`` or the account ``email`` names."""
    with _counter_reachable():
        limiter().hit(_lockout_item(), "login-fail", _lockout_key(email=email, user=user))


def login_lockout_clear(*, email: str = "", user: User | None = None) -> None:
    """Forget the failed sign-ins of ``user`` or ``email`` (after a complete sign-in)."""
    try:
        limiter().clear(_lockout_item(), "login-fail", _lockout_key(email=email, user=user))
    except StorageError:
        logger.warning("accounts.lockout.clear_failed")


def account_password_check(*, user: User, password: str) -> None:
    """Proof that the caller knows ``user``'s password, counted like a sign-in.

    Refused while the account is locked (even the right password: ``LockedOut``); a wrong
    password counts as a failed sign-in. Every form that asks for the password again (its
    change, confirming the email, linking a first provider) goes through here, so none of
    them is a way to guess it without limit.
    """
    login_guard(user=user)
    if not user.check_password(str(password or "")):
        login_failed(user=user)
        raise ApplicationError("The password is wrong.", code="invalid_password")
