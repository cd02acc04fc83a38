"""Reads of the repositories app; the ones that depend on a user always filter by owner."""

from typing import Any

from common.errors import NotFound
from projects.selectors import project_get_for_user

from .models import ForgeConnection


def forge_connection_get_for_user(*, user: Any, project_id: int) -> ForgeConnection:
    """The forge connection of the user's project; ``NotFound`` when the project is not theirs
    or has none."""
    project = project_get_for_user(user=user, project_id=project_id)
    connection = ForgeConnection.objects.filter(project=project).first()
    if connection is None:
        raise NotFound("This project has no forge connection.")
    return connection


def forge_connection_for_project(*, project_id: int) -> ForgeConnection | None:
    """The forge connection of a project, for tasks that act for its owner (no user check:
    the caller already holds the project's row)."""
    return ForgeConnection.objects.filter(project_id=project_id).first()
