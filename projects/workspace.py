"""Workspaces: a file tree on disk that the sandbox mounts read-write at /workspace.

Every workspace lives under one root (``SANDBOX_WORKSPACE_ROOT``, by default
``MEDIA_ROOT/workspaces``) that only root may traverse, so a sandbox uid that escaped its
mount namespace still could not reach another project's files. Inside, a workspace is
group-owned by the sandbox group (``projects.sandbox.sandbox_gid``) and group-writable, so
each run's uid can write it.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path

from django.conf import settings

from .artifacts import artifact_path_normalize
from .sandbox import sandbox_gid


def workspace_root() -> Path:
    """The directory that holds every workspace (made on first use, mode 0700)."""
    configured = settings.SANDBOX_WORKSPACE_ROOT
    root = Path(configured) if configured else Path(settings.MEDIA_ROOT) / "workspaces"
    root.mkdir(parents=True, exist_ok=True)
    os.chmod(root, 0o700)
    return root


def _prepare_dir(path: Path) -> None:
    """Owned by root, group sandbox, ``rwxrws---``: the sandbox's uids write through the group."""
    gid = sandbox_gid() if os.geteuid() == 0 else -1
    os.chown(path, -1, gid)
    os.chmod(path, 0o2770)  # noqa: S103 - group is the sandbox group only


def workspace_write_files(*, workspace: Path, files: Mapping[str, str | bytes]) -> None:
    """Write ``files`` (relative path -> content) into ``workspace``.

    Paths are normalized by the artifact rules: absolute paths, ``..``, backslashes and NUL
    bytes raise ``InvalidArtifactPath`` before anything is written.
    """
    normalized = {artifact_path_normalize(path): content for path, content in files.items()}
    base = workspace.resolve()
    for rel, content in normalized.items():
        target = base / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        # The workspace may hold what sandboxed code left: never write through its links.
        if not target.parent.resolve().is_relative_to(base):
            raise FileExistsError(f"{rel} would be written outside the workspace.")
        data = content.encode("utf-8") if isinstance(content, str) else content
        flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC
        fd = os.open(target, flags, 0o664)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)


def workspace_materialize(*, files: Mapping[str, str | bytes], root: Path | None = None) -> Path:
    """A fresh workspace directory holding ``files``; the caller removes it when done.

    Rejects absolute paths and ``..`` (``InvalidArtifactPath``) before creating anything.
    """
    for path in files:
        artifact_path_normalize(path)
    parent = Path(root) if root is not None else workspace_root() / "runs"
    parent.mkdir(parents=True, exist_ok=True)
    workspace = Path(tempfile.mkdtemp(prefix="ws-", dir=parent))
    try:
        _prepare_dir(workspace)
        workspace_write_files(workspace=workspace, files=files)
    except BaseException:
        shutil.rmtree(workspace, ignore_errors=True)
        raise
    return workspace


def workspace_path_for_project(*, project_id: int) -> Path:
    """Where the project's persistent workspace lives (whether or not it exists yet)."""
    return workspace_root() / "projects" / str(int(project_id))


def workspace_for_project(*, project_id: int) -> Path:
    """The persistent workspace of a project (the terminal's working directory)."""
    path = workspace_path_for_project(project_id=project_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        path.mkdir()
        _prepare_dir(path)
    return path


def workspace_remove(*, workspace: Path) -> None:
    """Delete a workspace and everything the sandbox wrote into it."""
    shutil.rmtree(workspace, ignore_errors=True)
