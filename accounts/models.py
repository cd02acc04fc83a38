"""Accounts: the custom user (login by email), device sessions, backup codes, OAuth codes."""

import unicodedata
import uuid
from collections.abc import Iterator
from typing import Any, ClassVar, cast

from django.conf import settings
from django.contrib.auth.models import AbstractUser, UserManager
from django.db import models
from django.utils import timezone
from django.utils.crypto import salted_hmac
from django_otp.models import Device


def canonical_email(value: str | None) -> str:
    """The one form in which two emails are compared: NFKC, then case folding (NFKC_Casefold).

    Every lookup by email (sign-in, registration, lockout, OAuth linking) compares this form
    with ``User.email_canonical`` for equality. Neither Python's ``lower()`` nor PostgreSQL's
    ``UPPER()``-based ``iexact`` is used: they disagree (``"admın".upper() == "ADMIN"`` while
    ``"admın".lower() != "admin"``), and one account would then answer to two spellings with
    two lockout counters.
    """
    folded = unicodedata.normalize("NFKC", (value or "").strip()).casefold()
    return unicodedata.normalize("NFKC", folded)


class EmailUserManager(UserManager):
    """Creates users whose login is their email; finds them by its canonical form."""

    def with_email(self, email: str | None) -> "models.QuerySet[User]":
        """The user (none or one) whose email is ``email`` in canonical form."""
        return cast("models.QuerySet[User]", self.filter(email_canonical=canonical_email(email)))

    def get_by_natural_key(self, username: str | None) -> "User":  # type: ignore[override]
        # USERNAME_FIELD is "email": Django's backends sign in through this lookup.
        return cast("User", self.with_email(username).get())


class User(AbstractUser):  # type: ignore[django-manager-missing]
    """A person using the platform. Email is unique and is the login; username is a label.

    ``email`` is kept as entered (lower case); ``email_canonical`` is what lookups compare
    and what is unique. ``email_verified_at`` is set when the owner followed the link mailed
    to the address (or a provider vouched for it): only then may an OAuth identity be linked
    to the account. ``session_epoch`` is part of the dashboard sessions' auth hash: raising
    it ends every cookie session of the user at once.
    """

    email = models.EmailField("email address", unique=True)
    email_canonical = models.CharField(max_length=1024, unique=True, editable=False)
    email_verified_at = models.DateTimeField(null=True, blank=True)
    session_epoch = models.PositiveIntegerField(default=0, editable=False)

    USERNAME_FIELD = "email"
    REQUIRED_FIELDS = ["username"]

    objects: ClassVar[EmailUserManager] = EmailUserManager()  # type: ignore[assignment]
    _loaded_email_canonical: str | None = None

    def __str__(self) -> str:
        return self.email

    @classmethod
    def from_db(cls, *args: Any, **kwargs: Any) -> "User":
        instance = cast("User", super().from_db(*args, **kwargs))
        instance._loaded_email_canonical = instance.__dict__.get("email_canonical")
        return instance

    @property
    def email_verified(self) -> bool:
        """Whether the owner of the address has proven it."""
        return self.email_verified_at is not None

    def save(self, *args: Any, **kwargs: Any) -> None:
        """Keep ``email_canonical`` in step with ``email``; a changed address is unverified."""
        self.email_canonical = canonical_email(self.email)
        changed = ["email_canonical"]
        loaded = getattr(self, "_loaded_email_canonical", None)
        if loaded is not None and loaded != self.email_canonical:
            self.email_verified_at = None
            changed.append("email_verified_at")
        update_fields = kwargs.get("update_fields")
        if update_fields is not None and "email" in update_fields:
            kwargs["update_fields"] = {*update_fields, *changed}
        super().save(*args, **kwargs)
        self._loaded_email_canonical = self.email_canonical

    def get_session_auth_hash(self) -> str:
        return self._session_auth_hash(secret=None)

    def get_session_auth_fallback_hash(self) -> Iterator[str]:
        for fallback_secret in settings.SECRET_KEY_FALLBACKS:
            yield self._session_auth_hash(secret=fallback_secret)

    def _session_auth_hash(self, *, secret: str | bytes | None) -> str:
        # Django's own hash of the password, plus the epoch once it has been raised (so the
        # sessions that exist before the first raise stay valid).
        value = self.password if not self.session_epoch else f"{self.password}:{self.session_epoch}"
        key_salt = "django.contrib.auth.models.AbstractBaseUser.get_session_auth_hash"
        return salted_hmac(key_salt, value, secret=secret, algorithm="sha256").hexdigest()


class UserSession(models.Model):
    """One login on one device. Its id is the ``sid`` claim of every token of that login.

    ``refresh_jti`` names the one live refresh token of the session; rotation replaces it with
    a compare-and-set, so concurrent refreshes of one token leave at most one live chain.
    ``previous_refresh_jti`` and ``refresh_issued_at`` let the refresh of the same token within
    the grace window rebuild the very same new pair.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="sessions")
    user_agent = models.CharField(max_length=512, blank=True)
    device = models.CharField(max_length=120, blank=True)
    ip = models.GenericIPAddressField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    last_seen_at = models.DateTimeField(default=timezone.now)
    refresh_jti = models.CharField(max_length=64, unique=True)
    previous_refresh_jti = models.CharField(max_length=64, blank=True)
    refresh_issued_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()
    revoked_at = models.DateTimeField(null=True, blank=True)
    revoked_reason = models.CharField(max_length=32, blank=True)
    # When this session passed a second factor (sign-in through /auth/mfa/verify, or the
    # code that turned MFA on in it); staff-only endpoints need it.
    mfa_verified_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["user", "revoked_at"])]
        ordering = ["-last_seen_at"]

    def __str__(self) -> str:
        return f"{self.user_id}:{self.device or 'device'}:{self.id}"

    @property
    def is_active(self) -> bool:
        """Not revoked and not past its refresh expiry."""
        return self.revoked_at is None and self.expires_at > timezone.now()


class BackupCodeDevice(Device):
    """A django-otp device whose tokens are single-use backup codes, stored only as digests.

    django-otp's static device keeps its tokens in plain text; this one keeps a keyed hash.
    """

    class Meta:
        verbose_name = "backup code device"

    def verify_token(self, token: str) -> bool:
        """Consume a matching unused code (atomic: a code works once, even under a race)."""
        from .backup_codes import backup_code_digest

        digest = backup_code_digest(str(token))
        used = BackupCode.objects.filter(device=self, digest=digest, used_at__isnull=True).update(
            used_at=timezone.now()
        )
        return used == 1


class BackupCode(models.Model):
    """One backup code of a user, as a keyed digest; ``used_at`` set once it has been spent."""

    device = models.ForeignKey(BackupCodeDevice, on_delete=models.CASCADE, related_name="codes")
    digest = models.CharField(max_length=64)
    created_at = models.DateTimeField(default=timezone.now)
    used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["device", "digest"], name="backup_code_unique"),
        ]

    def __str__(self) -> str:
        return f"backup code {self.pk} of device {self.device_id}"


class OAuthExchangeCode(models.Model):
    """A one-time code an API client trades for JWTs after OAuth (tokens never in a URL)."""

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="oauth_codes")
    digest = models.CharField(max_length=64, unique=True)
    # PKCE for the exchange (RFC 7636, S256): when the client sent a challenge at begin, the
    # exchange needs the matching verifier, so an intercepted redirect is worth nothing.
    code_challenge = models.CharField(max_length=128, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()
    used_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"oauth exchange code {self.pk} of user {self.user_id}"
