"""Terminal services: issuing tickets, admitting sessions, locating a project's workspace."""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

from django.conf import settings
from rest_framework import status

from common.errors import ApplicationError, NotFound
from common.logging import get_logger
from projects.models import Project
from projects.selectors import project_get_for_user
from projects.workspace import WorkspaceLease, workspace_lease_acquire, workspace_write_files

from .tickets import redis_client, ticket_issue

logger = get_logger(__name__)

_SESSIONS_PREFIX = "aiflow:terminal:sessions:"
# Drops expired leases, then adds this one if the user is under the limit: one atomic step.
_ACQUIRE = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[3]) then return 0 end
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[4])
redis.call('EXPIRE', KEYS[1], ARGV[5])
return 1
"""


class TerminalDisabled(ApplicationError):
    """``TERMINAL_ENABLED`` is off on this deployment."""

    status_code = status.HTTP_403_FORBIDDEN
    code = "terminal_disabled"


def terminal_ensure_enabled() -> None:
    if not settings.TERMINAL_ENABLED:
        raise TerminalDisabled("The terminal is disabled on this server (TERMINAL_ENABLED).")


def terminal_ticket_create(*, user: Any, project_id: int) -> str:
    """A single-use ticket for the user's own project (``NotFound`` for anyone else's)."""
    terminal_ensure_enabled()
    project = project_get_for_user(user=user, project_id=project_id)
    ticket = ticket_issue(user_id=user.pk, project_id=project.pk)
    logger.info("terminal.ticket_issued", user_id=user.pk, project_id=project.pk)
    return ticket


def terminal_lease_acquire(*, user_id: int) -> str | None:
    """Count a new terminal of ``user_id``; its lease id, or ``None`` at the user's limit.

    Leases expire on their own after the maximum session length, so a crashed web process
    never locks a user out for good.
    """
    now = time.time()
    lease = uuid.uuid4().hex
    ttl = int(settings.TERMINAL_MAX_SECONDS) + 60
    admitted = redis_client().eval(
        _ACQUIRE,
        1,
        f"{_SESSIONS_PREFIX}{int(user_id)}",
        now,
        now + ttl,
        int(settings.TERMINAL_MAX_PER_USER),
        lease,
        ttl,
    )
    return lease if admitted else None


def terminal_lease_release(*, user_id: int, lease: str) -> None:
    redis_client().zrem(f"{_SESSIONS_PREFIX}{int(user_id)}", lease)


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

    return workspace_lease_acquire(project_id=project.pk, on_first=fill_if_empty)


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
