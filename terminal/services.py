"""Terminal services: issuing tickets, admitting sessions, locating a project's workspace."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.conf import settings
from rest_framework import status

from common.errors import ApplicationError, NotFound
from common.logging import get_logger
from common.websocket import (
    stream_lease_acquire,
    stream_lease_refresh,
    stream_lease_release,
)
from projects.models import Project
from projects.quotas import workspace_lease_within_cap, workspace_room_check
from projects.selectors import project_get_for_user
from projects.workspace import WorkspaceLease, workspace_write_files

from .tickets import ticket_issue

logger = get_logger(__name__)


class TerminalDisabled(ApplicationError):
    """``TERMINAL_ENABLED`` is off on this deployment."""

    status_code = status.HTTP_403_FORBIDDEN
    code = "terminal_disabled"


def terminal_ensure_enabled() -> None:
    if not settings.TERMINAL_ENABLED:
        raise TerminalDisabled("The terminal is disabled on this server (TERMINAL_ENABLED).")


def terminal_ticket_create(*, user: Any, project_id: int, sid: str) -> str:
    """A single-use ticket for the user's own project (``NotFound`` for anyone else's).

    ``sid`` is the device session asking (a token's, or the one behind a dashboard cookie);
    the terminal closes when that session is revoked, and a ticket without one is refused.
    """
    terminal_ensure_enabled()
    if not sid:
        raise ApplicationError("A terminal ticket needs a signed-in session.", code="no_session")
    project = project_get_for_user(user=user, project_id=project_id)
    workspace_room_check(project=project)  # a new workspace image must fit the owner's cap
    ticket = ticket_issue(user_id=user.pk, project_id=project.pk, sid=sid)
    logger.info("terminal.ticket_issued", user_id=user.pk, project_id=project.pk)
    return ticket


def _lease_ttl() -> float:
    # Refreshed every watchdog tick; a crashed process frees its user's slot after this.
    return 120.0


def terminal_lease_acquire(*, user_id: int) -> str | None:
    """Count a new terminal of ``user_id``; its lease id, or ``None`` at the user's limit."""
    return stream_lease_acquire(
        kind="terminal",
        user_id=user_id,
        limit=int(settings.TERMINAL_MAX_PER_USER),
        ttl=_lease_ttl(),
    )


def terminal_lease_refresh(*, user_id: int, lease: str) -> None:
    """Keep a live terminal counted."""
    stream_lease_refresh(kind="terminal", user_id=user_id, lease=lease, ttl=_lease_ttl())


def terminal_lease_release(*, user_id: int, lease: str) -> None:
    """Stop counting a terminal that ended."""
    stream_lease_release(kind="terminal", user_id=user_id, lease=lease)


def terminal_workspace_open(*, user_id: int, project_id: int) -> WorkspaceLease:
    """A lease on the project's workspace for one terminal, filled on first use.

    ``NotFound`` unless the project still exists and belongs to ``user_id``. The workspace
    is filled from the latest run only when it is empty and no other terminal of the
    project is live (under the project's lock), by directory descriptors that never follow
    a link: what sandboxed code left in it cannot steer the web process's writes.
    """
    try:
        project = Project.objects.get(id=project_id, owner_id=user_id)
    except Project.DoesNotExist as exc:
        raise NotFound("Project not found.") from exc

    def fill_if_empty(workspace: Path) -> None:
        if not any(workspace.iterdir()):
            _fill_from_latest_run(project=project, workspace=workspace)

    return workspace_lease_within_cap(project=project, on_first=fill_if_empty)


def _fill_from_latest_run(*, project: Project, workspace: Path) -> None:
    from projects.artifacts import artifact_list_for_run, artifact_read, artifact_run_for_project

    try:
        run = artifact_run_for_project(project=project)
    except NotFound:
        return
    files = {a.path: artifact_read(artifact=a) for a in artifact_list_for_run(run=run)}
    try:
        workspace_write_files(workspace=workspace, files=files)
    except OSError as exc:
        # Over the quota, or a link in the way: the terminal opens on what was written.
        logger.warning("terminal.workspace_fill_failed", project_id=project.pk, error=str(exc))
        return
    logger.info("terminal.workspace_filled", project_id=project.pk, run_id=run.pk, files=len(files))
