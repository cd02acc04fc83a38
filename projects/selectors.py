"""Reads of projects, always filtered by owner."""

from typing import Any

from django.db.models import QuerySet

from common.db import PrecompiledRows
from common.errors import NotFound
from common.json_lists import JsonList

from .models import Project

# What GET /projects shows of each project, read as plain values (no model instances).
PROJECT_ROW_FIELDS = ("id", "name", "description", "created_at", "updated_at")
# GET /projects runs this on every call: its SQL (with the model's ordering) is compiled once.
_projects_of_owner = PrecompiledRows(
    lambda owner_id: Project.objects.filter(owner_id=owner_id).values_list(*PROJECT_ROW_FIELDS)
)


# The same list as GET /projects' body, written by PostgreSQL (``common.json_lists``).
_projects_of_owner_json = JsonList(Project, PROJECT_ROW_FIELDS, filter_field="owner")


def project_list_json_for_user(*, user: Any) -> str | None:
    """The user's projects, newest first, as the JSON body of ``GET /projects``
    (``ProjectOutputSerializer``'s objects, rendered by DRF's ``JSONRenderer``); None where
    PostgreSQL cannot write that body (``JsonList.render``)."""
    return _projects_of_owner_json.render(int(user.pk))


def project_list_for_user(*, user: Any) -> QuerySet[Project]:
    return Project.objects.filter(owner=user)


def project_rows_for_user(*, user: Any) -> list[tuple[Any, ...]]:
    """The user's projects, newest first, as tuples of ``PROJECT_ROW_FIELDS``: what
    ``project_list_for_user`` gives, without compiling its SQL again or building models."""
    return _projects_of_owner.all(int(user.pk))


def project_get_for_user(*, user: Any, project_id: int) -> Project:
    """The user's project, or ``NotFound`` (another user's project does not exist for them)."""
    try:
        return Project.objects.get(owner=user, id=project_id)
    except Project.DoesNotExist as exc:
        raise NotFound("Project not found.") from exc
