"""Reads of the accounts part, always filtered by the owner."""

from django.db.models import QuerySet
from django.utils import timezone

from common.errors import NotFound

from .models import User, UserSession


def session_list_for_user(*, user: User) -> QuerySet[UserSession]:
    """The user's live sessions (not revoked, not expired), most recently seen first."""
    return UserSession.objects.filter(
        user=user, revoked_at__isnull=True, expires_at__gt=timezone.now()
    ).order_by("-last_seen_at", "-created_at")


def session_get_for_user(*, user: User, session_id: str) -> UserSession:
    """One live session of ``user``; another user's (or an unknown) id is a 404."""
    session = session_list_for_user(user=user).filter(pk=session_id).first()
    if session is None:
        raise NotFound("Session not found.")
    return session
