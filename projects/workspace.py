"""Workspaces: a file tree on disk that the sandbox mounts read-write at /workspace.

Every workspace lives under one root (``SANDBOX_WORKSPACE_ROOT``, by default
``MEDIA_ROOT/workspaces``) that only root may traverse, so a sandbox uid that escaped its
mount namespace still could not reach another project's files. Inside, a workspace is
group-owned by the sandbox group (``projects.sandbox.sandbox_gid``) and group-writable, so
each run's uid can write it.

Disk quota: started by root, each workspace is a filesystem of its own, an ext4 image of
``SANDBOX_WORKSPACE_MB`` (a sparse file next to the directory, ``<name>.img``) loop-mounted
``nosuid,nodev`` on the directory. Whatever the sandbox writes (one big file, a million small
ones) stops at "No space left on device" inside that filesystem and never fills the host's
disk; hard links to host files cannot exist in it either. Without root there is no mount,
and the quota is not enforced (the per-file size limit still is).

Writing into a workspace (``workspace_write_files``) walks every path by directory
descriptors, each component opened with ``O_NOFOLLOW | O_DIRECTORY`` relative to its
parent and the file itself with ``O_NOFOLLOW``: a link or a swapped directory left by
sandboxed code makes the write fail instead of landing outside the workspace.

A project's persistent workspace (the terminal's) is used through a lease
(``workspace_lease_acquire``): under a per-project lock, the first lease mounts it and may
fill it while no sandboxed process can touch it; the last one to go unmounts it. Each live
lease holds a shared ``flock`` the kernel drops if its process dies, so a crashed web process
never leaves the project looking busy.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import shutil
import stat
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings

from common.logging import get_logger

from .artifacts import artifact_path_normalize
from .sandbox import sandbox_gid

logger = get_logger(__name__)

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_FILE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
_MOUNT_OPTIONS = "loop,nosuid,nodev"


class WorkspaceEscape(FileExistsError):
    """A path of the tree would be written through a link or a non-directory."""


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


# --- Quota: one filesystem per workspace -----------------------------------------------------


def workspace_quota_enforced() -> bool:
    """True when workspaces get a size-capped filesystem of their own (root, quota > 0)."""
    return os.geteuid() == 0 and int(settings.SANDBOX_WORKSPACE_MB) > 0


def _image_of(workspace: Path) -> Path:
    return workspace.with_name(workspace.name + ".img")


def _run(argv: list[str]) -> None:
    result = subprocess.run(  # noqa: S603 - fixed tools, paths of our own workspace root
        argv, capture_output=True, text=True, check=False, timeout=60
    )
    if result.returncode != 0:
        raise OSError(
            errno.EIO, f"{argv[0]} failed: {(result.stderr or result.stdout).strip()[:300]}"
        )


def _image_create(image: Path) -> None:
    """A sparse ext4 image of ``SANDBOX_WORKSPACE_MB``; its root is ``root:sandbox``."""
    size = int(settings.SANDBOX_WORKSPACE_MB) * 1024 * 1024
    fd = os.open(image, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    try:
        os.ftruncate(fd, size)
    finally:
        os.close(fd)
    try:
        _run(
            [
                shutil.which("mkfs.ext4") or "/usr/sbin/mkfs.ext4",
                "-q",
                "-F",
                "-m",
                "0",
                "-O",
                "^has_journal",
                "-E",
                f"root_owner=0:{sandbox_gid()}",
                str(image),
            ]
        )
    except BaseException:
        image.unlink(missing_ok=True)
        raise


def _mount(workspace: Path) -> None:
    """Mount the workspace's image on it (creating the image on first use).

    A directory that already holds files but has no image yet (made before quotas) has
    its tree moved into the new filesystem first; nothing sandboxed runs on it meanwhile.
    """
    image = _image_of(workspace)
    if not image.exists():
        _image_create(image)
        if any(workspace.iterdir()):
            _move_into_image(workspace, image)
    _run(["mount", "-o", _MOUNT_OPTIONS, str(image), str(workspace)])
    with contextlib.suppress(FileNotFoundError, OSError):
        os.rmdir(workspace / "lost+found")
    _prepare_dir(workspace)


def _move_into_image(workspace: Path, image: Path) -> None:
    staging = Path(tempfile.mkdtemp(prefix=".mount-", dir=workspace.parent))
    try:
        _run(["mount", "-o", _MOUNT_OPTIONS, str(image), str(staging)])
        try:
            shutil.copytree(workspace, staging, symlinks=True, dirs_exist_ok=True)
        finally:
            _unmount(staging)
    finally:
        staging.rmdir()
    for entry in workspace.iterdir():
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()


def _unmount(workspace: Path) -> None:
    if not os.path.ismount(workspace):
        return
    try:
        _run(["umount", str(workspace)])
    except OSError:
        # Busy (a process we could not see yet holds it): detach now, freed when it goes.
        _run(["umount", "-l", str(workspace)])


def workspace_usage_bytes(*, workspace: Path) -> int:
    """Bytes in use on the workspace's filesystem (its own when the quota is enforced)."""
    st = os.statvfs(workspace)
    return (st.f_blocks - st.f_bfree) * st.f_frsize


# --- Writing files -------------------------------------------------------------------------


def _open_dir(parent_fd: int, name: str, *, create: bool) -> int:
    if create:
        with contextlib.suppress(FileExistsError):
            os.mkdir(name, 0o2770, dir_fd=parent_fd)
    try:
        fd = os.open(name, _DIR_FLAGS, dir_fd=parent_fd)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR):
            raise WorkspaceEscape(f"{name} is a link or not a directory.") from exc
        raise
    if create and os.geteuid() == 0:
        _hand_over(fd)
    return fd


def _hand_over(fd: int) -> None:
    """Group sandbox, group-writable (directories setgid), as the sandbox expects."""
    st = os.fstat(fd)
    if st.st_gid != sandbox_gid():
        os.fchown(fd, -1, sandbox_gid())
    mode = 0o2770 if stat.S_ISDIR(st.st_mode) else 0o664
    if stat.S_IMODE(st.st_mode) != mode:
        os.fchmod(fd, mode)


def _write_one(root_fd: int, rel: str, data: bytes) -> None:
    *dirs, name = rel.split("/")
    opened: list[int] = []
    try:
        parent = root_fd
        for part in dirs:
            parent = _open_dir(parent, part, create=True)
            opened.append(parent)
        try:
            fd = os.open(name, _FILE_FLAGS, 0o664, dir_fd=parent)
        except OSError as exc:
            if exc.errno in (errno.ELOOP, errno.ENXIO, errno.EISDIR):
                raise WorkspaceEscape(f"{rel} is a link or not a regular file.") from exc
            raise
        with os.fdopen(fd, "wb") as fh:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise WorkspaceEscape(f"{rel} is not a regular file.")
            if os.geteuid() == 0:
                _hand_over(fd)
            fh.write(data)
    finally:
        for fd in opened:
            os.close(fd)


def workspace_write_files(*, workspace: Path, files: Mapping[str, str | bytes]) -> None:
    """Write ``files`` (relative path -> content) into ``workspace``.

    Paths are normalized by the artifact rules: absolute paths, ``..``, backslashes and NUL
    bytes raise ``InvalidArtifactPath`` before anything is written. The tree may hold what
    sandboxed code left, so nothing is opened by path: every component is opened relative
    to its parent's descriptor without following links, and a link anywhere on the way
    raises ``WorkspaceEscape`` (nothing is written outside the workspace, not even a
    directory).
    """
    normalized = {artifact_path_normalize(path): content for path, content in files.items()}
    root_fd = os.open(workspace, _DIR_FLAGS)
    try:
        for rel, content in normalized.items():
            data = content.encode("utf-8") if isinstance(content, str) else content
            _write_one(root_fd, rel, data)
    finally:
        os.close(root_fd)


# --- Workspaces of a run ---------------------------------------------------------------------


def workspace_materialize(*, files: Mapping[str, str | bytes], root: Path | None = None) -> Path:
    """A fresh workspace directory holding ``files``; the caller removes it when done.

    Rejects absolute paths and ``..`` (``InvalidArtifactPath``) before creating anything.
    With the quota enforced it is a filesystem of its own (see the module doc).
    """
    for path in files:
        artifact_path_normalize(path)
    parent = Path(root) if root is not None else workspace_root() / "runs"
    parent.mkdir(parents=True, exist_ok=True)
    workspace = Path(tempfile.mkdtemp(prefix="ws-", dir=parent))
    try:
        _hold(workspace)
        _prepare_dir(workspace)
        if workspace_quota_enforced():
            _mount(workspace)
        workspace_write_files(workspace=workspace, files=files)
    except BaseException:
        workspace_remove(workspace=workspace)
        raise
    return workspace


def workspace_remove(*, workspace: Path) -> None:
    """Delete a workspace, everything the sandbox wrote into it, and its filesystem image."""
    workspace = Path(workspace)
    with contextlib.suppress(OSError):
        _unmount(workspace)
    shutil.rmtree(workspace, ignore_errors=True)
    for sibling in (
        _image_of(workspace),
        workspace.with_suffix(".lock"),
        workspace.with_suffix(".live"),
    ):
        sibling.unlink(missing_ok=True)
    held = _held.pop(str(workspace), None)
    if held is not None:
        os.close(held)


# A run's workspace is held, from its creation to its removal, by an exclusive ``flock`` on
# ``<workspace>.lock`` that the kernel drops when the holding process dies: a workspace whose
# lock is free was left behind by a killed process (a SIGKILLed sandbox worker), still
# mounted, and ``workspace_sweep_runs`` takes it away.
_held: dict[str, int] = {}
# A workspace younger than this without its lock file is being created, not abandoned.
_SWEEP_GRACE_SECONDS = 60.0


def _hold(workspace: Path) -> None:
    fd = os.open(workspace.with_suffix(".lock"), os.O_CREAT | os.O_RDWR | os.O_CLOEXEC, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    _held[str(workspace)] = fd


def _abandoned(workspace: Path) -> bool:
    lock = workspace.with_suffix(".lock")
    try:
        fd = os.open(lock, os.O_RDWR | os.O_CLOEXEC)
    except FileNotFoundError:
        with contextlib.suppress(FileNotFoundError):
            return time.time() - workspace.lstat().st_mtime > _SWEEP_GRACE_SECONDS
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False  # a live process holds it
    finally:
        os.close(fd)
    return True


def workspace_sweep_runs(*, root: Path | None = None) -> int:
    """Remove the run workspaces that killed processes left behind; how many were removed.

    ``root`` is where they are made (``workspace_materialize``'s, by default the runs'
    directory). Safe to call from any process at any time: a workspace in use is held by its
    creator's lock and left alone. A sandbox worker calls it when it starts.
    """
    parent = Path(root) if root is not None else workspace_root() / "runs"
    if not parent.is_dir():
        return 0
    removed = 0
    for entry in sorted(parent.glob("ws-*")):
        if entry.suffix or not entry.is_dir() or str(entry) in _held:
            continue
        if _abandoned(entry):
            workspace_remove(workspace=entry)
            logger.warning("workspace.swept", workspace=entry.name)
            removed += 1
    return removed


# --- A project's persistent workspace ------------------------------------------------------


def workspace_path_for_project(*, project_id: int) -> Path:
    """Where the project's persistent workspace lives (whether or not it exists yet)."""
    return workspace_root() / "projects" / str(int(project_id))


def workspace_image_for_project(*, project_id: int) -> Path:
    """Where the project's workspace image lives (made by its first terminal, quota on)."""
    return _image_of(workspace_path_for_project(project_id=project_id))


def workspace_for_project(*, project_id: int) -> Path:
    """The persistent workspace directory of a project, made on first use (not mounted)."""
    path = workspace_path_for_project(project_id=project_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        path.mkdir()
        _prepare_dir(path)
    return path


@contextlib.contextmanager
def _project_lock(project_id: int) -> Iterator[None]:
    """The per-project lock: leases of one project are taken and given back one at a time."""
    path = workspace_path_for_project(project_id=project_id).with_suffix(".lock")
    fd = os.open(path, os.O_CREAT | os.O_RDWR | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _live_file(project_id: int) -> Path:
    return workspace_path_for_project(project_id=project_id).with_suffix(".live")


@dataclass
class WorkspaceLease:
    """A live use of a project's workspace (a terminal); give it back with ``release``."""

    project_id: int
    path: Path
    first: bool
    _fd: int | None

    def release(self) -> None:
        """Give the lease back; the last lease of the project unmounts the workspace."""
        workspace_lease_release(lease=self)


def workspace_lease_acquire(
    *, project_id: int, on_first: Callable[[Path], None] | None = None
) -> WorkspaceLease:
    """Take a lease on the project's workspace, mounting it if no other lease is live.

    ``on_first(path)`` runs only for the first lease, under the project's lock and before
    the lease is handed out, so nothing sandboxed runs on the workspace meanwhile (the
    place to fill it). An exception in it releases everything and propagates.
    """
    path = workspace_for_project(project_id=project_id)
    with _project_lock(project_id):
        fd = os.open(_live_file(project_id), os.O_CREAT | os.O_RDWR | os.O_CLOEXEC, 0o600)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                first = True
            except BlockingIOError:
                first = False
            if first:
                if workspace_quota_enforced() and not os.path.ismount(path):
                    _mount(path)
                if on_first is not None:
                    on_first(path)
            fcntl.flock(fd, fcntl.LOCK_SH)
        except BaseException:
            os.close(fd)
            if first:
                with contextlib.suppress(OSError):
                    _unmount(path)
            raise
    return WorkspaceLease(project_id=project_id, path=path, first=first, _fd=fd)


def workspace_lease_release(*, lease: WorkspaceLease) -> None:
    """Give a lease back; unmount the workspace when it was the last live one."""
    if lease._fd is None:
        return
    with _project_lock(lease.project_id):
        os.close(lease._fd)
        lease._fd = None
        probe = os.open(_live_file(lease.project_id), os.O_CREAT | os.O_RDWR | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(probe, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return  # another terminal of the project still uses it
        else:
            with contextlib.suppress(OSError):
                _unmount(lease.path)
        finally:
            os.close(probe)


def workspace_sweep_projects() -> int:
    """Unmount the project workspaces that no live lease holds; how many were unmounted.

    A web process killed with a terminal open never gives its lease back: the kernel drops
    its lock, but the workspace stays mounted until the project's next terminal. Its files
    stay in the image for that terminal. Safe from any process at any time: a workspace
    with a live lease (in any process) is left alone. A web process calls it when it starts.
    """
    parent = workspace_root() / "projects"
    unmounted = 0
    for entry in sorted(parent.iterdir()) if parent.is_dir() else []:
        if not entry.name.isdigit() or not os.path.ismount(entry):
            continue
        project_id = int(entry.name)
        with _project_lock(project_id):
            if workspace_is_in_use(project_id=project_id):
                continue
            try:
                _unmount(entry)
            except OSError:
                logger.exception("workspace.sweep_failed", workspace=entry.name)
                continue
        logger.warning("workspace.swept", workspace=f"project {project_id}")
        unmounted += 1
    return unmounted


def workspace_is_in_use(*, project_id: int) -> bool:
    """True while some lease of the project is live (in any process of this host)."""
    path = _live_file(project_id)
    if not path.exists():
        return False
    fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False
