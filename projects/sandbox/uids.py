"""The pool of unprivileged uids the sandbox runs commands as (when started by root)."""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

from django.conf import settings

from common.logging import get_logger

from .types import SandboxUnavailable

logger = get_logger(__name__)

_KILL_ROUNDS = 50

# --- The uid pool --------------------------------------------------------------------------


@contextlib.contextmanager
def _uid_lease() -> Iterator[int]:
    """Hold one uid of the pool for the duration of a run (an flock per uid).

    flock is released by the kernel when the holder dies, so a crashed worker never leaks
    a uid. The lock file descriptor is not inherited by the command (close_fds).
    """
    slot_dir = Path(settings.SANDBOX_SLOT_DIR)
    slot_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    base, count = settings.SANDBOX_UID_BASE, settings.SANDBOX_UID_COUNT
    start = int.from_bytes(os.urandom(2), "big") % count
    deadline = time.monotonic() + 30
    while True:
        for offset in range(count):
            uid = base + (start + offset) % count
            fd = os.open(slot_dir / f"{uid}.lock", os.O_CREAT | os.O_RDWR | os.O_CLOEXEC, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                continue
            try:
                # A uid whose processes are still alive (a previous holder died mid-run)
                # is swept before it is handed out again.
                kill_uid(uid)
                yield uid
            finally:
                kill_uid(uid)
                fcntl.flock(fd, fcntl.LOCK_UN)
                os.close(fd)
            return
        if time.monotonic() > deadline:
            raise SandboxUnavailable("Every sandbox uid is busy; try again later.")
        time.sleep(0.2)


def sandbox_gid() -> int:
    """The group every sandbox uid runs with; workspaces are group-writable by it."""
    return int(settings.SANDBOX_UID_BASE)


def processes_of_uid(uid: int) -> list[int]:
    """Pids whose real uid is ``uid`` (from /proc)."""
    pids = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/status", encoding="ascii", errors="replace") as fh:
                for line in fh:
                    if line.startswith("Uid:"):
                        if int(line.split()[1]) == uid:
                            pids.append(int(entry.name))
                        break
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
    return pids


def resident_bytes_of_uid(uid: int) -> int:
    """Resident memory of every process of ``uid`` together (shared pages counted per process)."""
    page = os.sysconf("SC_PAGE_SIZE")
    total = 0
    for pid in processes_of_uid(uid):
        try:
            with open(f"/proc/{pid}/statm", encoding="ascii") as fh:
                total += int(fh.read().split()[1]) * page
        except (FileNotFoundError, ProcessLookupError, PermissionError, IndexError, ValueError):
            continue
    return total


def kill_uid(uid: int) -> None:
    """Kill every process of ``uid`` (``kill(-1)`` sent from that uid), until none is left."""
    if os.geteuid() != 0 or uid < int(settings.SANDBOX_UID_BASE):
        return
    for _ in range(_KILL_ROUNDS):
        if not processes_of_uid(uid):
            return
        with contextlib.suppress(subprocess.SubprocessError, OSError):
            subprocess.run(  # noqa: S603 - fixed argv, numeric uid from our own pool
                [
                    shutil.which("setpriv") or "/usr/bin/setpriv",
                    f"--reuid={uid}",
                    f"--regid={uid}",
                    "--clear-groups",
                    "--",
                    shutil.which("kill") or "/usr/bin/kill",
                    "-KILL",
                    "-1",
                ],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                timeout=5,
                check=False,
            )
        time.sleep(0.05)
    logger.warning("sandbox.uid_not_cleared", uid=uid, pids=processes_of_uid(uid)[:20])
