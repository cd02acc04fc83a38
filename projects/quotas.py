"""Per-user caps: how many projects one account may have, and how much disk the workspace
images of its projects may take together.

A project's persistent workspace (the terminal's) is an ext4 image of
``SANDBOX_WORKSPACE_MB``, made the first time a terminal opens on the project and kept until
the project is deleted, so an account could otherwise fill the host's disk one project at a
time. An image counts at its full size: sparse or not, the sandbox may fill it. Without root
there are no images (``workspace_quota_enforced``) and nothing to count. The temporary
workspaces of a run's checks live only as long as the check, a few per sandbox worker.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import connection
from rest_framework import status

from common.errors import ApplicationError
from common.logging import get_logger

from .models import Project
from .workspace import (
    WorkspaceLease,
    workspace_image_for_project,
    workspace_lease_acquire,
    workspace_quota_enforced,
    workspace_root,
)

logger = get_logger(__name__)

MB = 1024 * 1024
# The namespace of the advisory lock that makes one user's project creations take turns.
_PROJECTS_LOCK = 0x70726A


class ProjectLimitReached(ApplicationError):
    """The account has ``PROJECTS_MAX_PER_USER`` projects already."""

    status_code = status.HTTP_403_FORBIDDEN
    code = "project_limit"


class WorkspaceLimitReached(ApplicationError):
    """A new workspace image would take the account past ``WORKSPACE_MAX_TOTAL_MB_PER_USER``."""

    status_code = status.HTTP_403_FORBIDDEN
    code = "workspace_limit"


def project_slot_take(*, owner: Any) -> None:
    """Refuse a new project past ``PROJECTS_MAX_PER_USER`` (``ProjectLimitReached``).

    Inside the caller's transaction, which then creates the project: the owner's creations
    take turns on a transaction-scoped advisory lock, so two at once cannot both find room.
    """
    cap = int(settings.PROJECTS_MAX_PER_USER)
    if not cap:
        return
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s, %s)", [_PROJECTS_LOCK, int(owner.pk)])
    count = Project.objects.filter(owner_id=owner.pk).count()
    if count >= cap:
        logger.warning("project.limit_reached", user_id=owner.pk, projects=count, cap=cap)
        raise ProjectLimitReached(
            f"You have {count} projects, the most one account may have ({cap}). "
            "Delete a project to create another.",
            extra={"max_projects": cap},
        )


def workspace_images_bytes(*, owner_id: int) -> int:
    """Bytes the workspace images of the owner's projects take (each at its full size)."""
    total = 0
    for project_id in Project.objects.filter(owner_id=owner_id).values_list("id", flat=True):
        with contextlib.suppress(FileNotFoundError):
            total += workspace_image_for_project(project_id=project_id).stat().st_size
    return total


def _needs_image(project_id: int) -> bool:
    return (
        workspace_quota_enforced()
        and not workspace_image_for_project(project_id=project_id).exists()
    )


def workspace_room_check(*, project: Project) -> None:
    """Refuse (``WorkspaceLimitReached``) when opening the project's workspace would make an
    image that takes its owner past ``WORKSPACE_MAX_TOTAL_MB_PER_USER``."""
    cap_mb = int(settings.WORKSPACE_MAX_TOTAL_MB_PER_USER)
    if not cap_mb or not _needs_image(project.pk):
        return
    used = workspace_images_bytes(owner_id=project.owner_id)
    image = int(settings.SANDBOX_WORKSPACE_MB) * MB
    if used + image > cap_mb * MB:
        logger.warning(
            "workspace.limit_reached",
            user_id=project.owner_id,
            project_id=project.pk,
            used_mb=used // MB,
            cap_mb=cap_mb,
        )
        raise WorkspaceLimitReached(
            f"Your projects' workspaces take {used // MB} MB of the {cap_mb} MB one account "
            f"may use, and this project's would take {image // MB} MB more. Delete a project "
            "whose terminal you no longer need to make room.",
            extra={"used_mb": used // MB, "max_mb": cap_mb},
        )


@contextlib.contextmanager
def _owner_lock(owner_id: int) -> Iterator[None]:
    """The owner's lock on this host: their new images are made one at a time."""
    owners = workspace_root() / "owners"
    owners.mkdir(exist_ok=True)
    fd = os.open(
        Path(owners, f"{int(owner_id)}.lock"), os.O_CREAT | os.O_RDWR | os.O_CLOEXEC, 0o600
    )
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def workspace_lease_within_cap(
    *, project: Project, on_first: Callable[[Path], None] | None = None
) -> WorkspaceLease:
    """``workspace_lease_acquire`` for the project, refusing an image past the owner's cap.

    The check and the image's creation happen under the owner's lock, so two terminals
    opening at once on two projects cannot both find room for one last image.
    """
    if not _needs_image(project.pk):
        return workspace_lease_acquire(project_id=project.pk, on_first=on_first)
    with _owner_lock(project.owner_id):
        workspace_room_check(project=project)
        return workspace_lease_acquire(project_id=project.pk, on_first=on_first)
