"""Accounts: the custom user (login by email), device sessions, backup codes, OAuth codes."""

import uuid
from typing import ClassVar, cast

from django.contrib.auth.models import AbstractUser, UserManager
from django.db import models
from django.utils import timezone
from django_otp.models import Device


class EmailUserManager(UserManager):
    """Creates users whose login is their email, normalised to lower case."""

    def get_by_natural_key(self, username: str | None) -> "User":  # type: ignore[override]
        # USERNAME_FIELD is "email"; the lookup ignores case like the unique constraint does.
        return cast("User", self.get(email__iexact=username))


class User(AbstractUser):  # type: ignore[django-manager-missing]
    """A person using the platform. Email is unique and is the login; username is a label."""

    email = models.EmailField("email address", unique=True)

    USERNAME_FIELD = "email"
    REQUIRED_FIELDS = ["username"]

    objects: ClassVar[EmailUserManager] = EmailUserManager()  # type: ignore[assignment]

    class Meta:
        constraints = [
            models.UniqueConstraint(models.functions.Lower("email"), name="user_email_ci_unique"),
        ]

    def __str__(self) -> str:
        return self.email


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
