"""Reads of projects, always filtered by owner."""

from typing import Any

from django.db.models import QuerySet

from common.errors import NotFound

from .models import Project


def project_list_for_user(*, user: Any) -> QuerySet[Project]:
    return Project.objects.filter(owner=user)


def project_get_for_user(*, user: Any, project_id: int) -> Project:
    """The user's project, or ``NotFound`` (another user's project does not exist for them)."""
    try:
        return Project.objects.get(owner=user, id=project_id)
    except Project.DoesNotExist as exc:
        raise NotFound("Project not found.") from exc
