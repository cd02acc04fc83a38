"""Account changes made anywhere (services, admin, shell) end the user's sessions; a
dashboard sign-in notes when it happened."""

from typing import Any

from django.contrib.auth.signals import user_logged_in
from django.db import transaction
from django.db.models.signals import post_save, pre_save
from django.dispatch import receiver
from django.utils import timezone

from .models import User

_WATCHED = {"password", "is_active"}
# The dashboard session key holding when it signed in (ISO 8601), for re-authentication.
SIGNED_IN_AT_SESSION_KEY = "accounts_signed_in_at"


@receiver(user_logged_in)
def _note_sign_in_time(sender: Any, request: Any = None, **_: Any) -> None:
    """Record in the dashboard session when it signed in (see ``services.mfa._reauthenticate``)."""
    session = getattr(request, "session", None)
    if session is not None:
        session[SIGNED_IN_AT_SESSION_KEY] = timezone.now().isoformat()


@receiver(pre_save, sender=User)
def _note_security_change(sender: Any, instance: User, update_fields: Any = None, **_: Any) -> None:
    """Remember whether this save changes the password or deactivates the account.

    ``_password`` is set only by ``set_password`` and is cleared again by Django's own rehash
    on login, so a hash upgrade does not count as a password change.
    """
    instance._accounts_revoke = None  # type: ignore[attr-defined]
    if instance.pk is None or (update_fields is not None and not _WATCHED & set(update_fields)):
        return
    if getattr(instance, "_password", None) is not None:
        instance._accounts_revoke = "password_changed"  # type: ignore[attr-defined]
        return
    if not instance.is_active:
        was_active = User.objects.filter(pk=instance.pk, is_active=True).exists()
        if was_active:
            instance._accounts_revoke = "deactivated"  # type: ignore[attr-defined]


@receiver(post_save, sender=User)
def _revoke_after_security_change(sender: Any, instance: User, created: bool, **_: Any) -> None:
    reason = getattr(instance, "_accounts_revoke", None)
    if created or not reason:
        return
    from .services import user_sessions_revoke_all

    with transaction.atomic():
        user_sessions_revoke_all(user=instance, reason=reason)
