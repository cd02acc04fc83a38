"""Reads of projects, always filtered by owner."""

from typing import Any

from django.db.models import QuerySet

from common.db import PrecompiledQuery
from common.errors import NotFound

from .models import Project

# GET /projects runs this on every call: its SQL (with the model's ordering) is compiled once.
_projects_of_owner = PrecompiledQuery(lambda owner_id: Project.objects.filter(owner_id=owner_id))


def project_list_for_user(*, user: Any) -> QuerySet[Project]:
    return Project.objects.filter(owner=user)


def project_rows_for_user(*, user: Any) -> list[Project]:
    """The user's projects, newest first, as a list: what ``project_list_for_user`` gives,
    without compiling its SQL again."""
    return _projects_of_owner.all(int(user.pk))


def project_get_for_user(*, user: Any, project_id: int) -> Project:
    """The user's project, or ``NotFound`` (another user's project does not exist for them)."""
    try:
        return Project.objects.get(owner=user, id=project_id)
    except Project.DoesNotExist as exc:
        raise NotFound("Project not found.") from exc
