"""What only bubblewrap's mounts, the rlimits, the seccomp filter, the workspace's own
filesystem and the memory watcher give: each test here fails when that layer is missing
(run it with ``SANDBOX_MODE=unsafe-local`` or a quota of 0 to see it). The seccomp filter's
tests are in ``test_seccomp.py``."""

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from projects.sandbox import SandboxLimits, sandbox_run
from projects.workspace import workspace_materialize, workspace_remove
from tests.sandbox.helpers import needs_root, sandbox_processes_after_settling


def sh(workspace: Path, script: str, limits: SandboxLimits | None = None) -> Any:
    return sandbox_run(workspace=workspace, argv=["bash", "-c", script], limits=limits)


@pytest.fixture
def host_probe() -> Iterator[Path]:
    """A world-readable file and a world-writable directory on the host, outside /tmp (the
    sandbox has a /tmp of its own) and outside every workspace."""
    base = Path("/var/tmp") / f"aiflow-host-probe-{os.getpid()}"
    base.mkdir(mode=0o755, exist_ok=True)
    os.chmod(base, 0o755)  # noqa: S103 - the sandbox uid must be able to traverse it
    (base / "readable.txt").write_text("host secret\n")
    os.chmod(base / "readable.txt", 0o644)
    (base / "drop").mkdir(exist_ok=True)
    os.chmod(base / "drop", 0o777)  # noqa: S103 - the point of the test
    yield base
    shutil.rmtree(base, ignore_errors=True)


# --- Mounts --------------------------------------------------------------------------------


def test_a_world_readable_host_file_cannot_be_seen(workspace: Path, host_probe: Path) -> None:
    result = sh(workspace, f"cat {host_probe}/readable.txt")

    assert (result.exit_code, result.stdout) == (1, "")
    assert "No such file or directory" in result.stderr


def test_a_world_writable_host_directory_cannot_be_written(
    workspace: Path, host_probe: Path
) -> None:
    sh(workspace, f"echo planted > {host_probe}/drop/planted.txt")

    assert list((host_probe / "drop").iterdir()) == []


def test_the_sandbox_sees_exactly_these_mounts(
    workspace: Path, settings: Any, tmp_path: Path
) -> None:
    venv, python_home = tmp_path / "venv", tmp_path / "python"
    venv.mkdir()
    python_home.mkdir()
    settings.SANDBOX_VENV, settings.SANDBOX_PYTHON_HOME = str(venv), str(python_home)

    result = sh(workspace, "cut -d' ' -f5,6 /proc/self/mountinfo")

    mounts = [line.split(" ")[0] for line in result.stdout.splitlines()]
    etc = [
        name
        for name in (
            "/etc/alternatives", "/etc/ld.so.cache", "/etc/ld.so.conf", "/etc/ld.so.conf.d",
            "/etc/localtime", "/etc/nsswitch.conf", "/etc/bash.bashrc", "/etc/profile",
            "/etc/inputrc", "/etc/terminfo", "/etc/mime.types",
        )
        if os.path.exists(name)
    ]  # fmt: skip
    devices = ["/dev/null", "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom", "/dev/tty"]
    assert [m for m in mounts if not m.startswith("/proc/")] == [
        "/", "/usr", *etc, "/etc/passwd", "/etc/group", "/etc/hosts", "/etc/hostname",
        "/proc", "/dev", *devices, "/dev/pts", "/tmp", "/dev/shm",
        str(python_home), str(venv), "/workspace",
    ]  # fmt: skip


def test_only_the_workspace_and_the_private_tmpfs_are_writable(workspace: Path) -> None:
    result = sh(workspace, "cut -d' ' -f5,6 /proc/self/mountinfo")

    writable = [
        line.split(" ")[0]
        for line in result.stdout.splitlines()
        if line.split(" ")[1].split(",")[0] == "rw" and not line.startswith(("/dev", "/proc"))
    ]
    assert writable == ["/tmp", "/workspace"]


# --- Limits ----------------------------------------------------------------------------------


def test_the_cpu_seconds_limit_ends_a_busy_loop(workspace: Path) -> None:
    limits = SandboxLimits(cpu_seconds=1, wall_seconds=60)

    result = sh(workspace, "python -c 'while True: pass'; echo status $?", limits)

    assert (result.timed_out, result.stdout) == (False, "status 152\n")  # 128 + SIGXCPU
    assert "CPU time limit exceeded" in result.stderr


def test_the_open_files_limit_binds(workspace: Path) -> None:
    limits = SandboxLimits(open_files=64)

    result = sh(
        workspace,
        "ulimit -n; python -c \"fs = [open('/dev/null') for _ in range(100)]\"",
        limits,
    )

    assert result.stdout == "64\n"
    assert "Too many open files" in result.stderr


# --- Disk quota and total memory -------------------------------------------------------------


@needs_root
@pytest.mark.slow
def test_a_many_file_disk_filler_stays_under_the_workspace_quota(settings: Any) -> None:
    settings.SANDBOX_WORKSPACE_MB = 64
    workspace = workspace_materialize(files={"README.md": "hello\n"})
    try:
        result = sh(
            workspace,
            "for i in $(seq 1 20); do head -c 16M /dev/zero > fill$i.bin || exit 9; done",
            SandboxLimits(file_size_mb=16, wall_seconds=60),
        )
        written = sum(f.stat().st_size for f in workspace.glob("fill*.bin"))
    finally:
        workspace_remove(workspace=workspace)

    assert (result.exit_code, "No space left on device" in result.stderr) == (9, True)
    assert written <= 64 * 1024 * 1024


@needs_root
def test_the_workspace_is_a_filesystem_of_its_own_of_the_quota_size(settings: Any) -> None:
    settings.SANDBOX_WORKSPACE_MB = 32
    workspace = workspace_materialize(files={"README.md": "hello\n"})
    try:
        mounted = os.path.ismount(workspace)
        stats = os.statvfs(workspace)
    finally:
        workspace_remove(workspace=workspace)

    assert mounted is True
    assert 28 * 1024 * 1024 < stats.f_blocks * stats.f_frsize <= 32 * 1024 * 1024


@pytest.mark.slow
def test_processes_that_together_pass_the_memory_bound_are_killed(workspace: Path) -> None:
    # Four processes of 120 MB each stay under the per-process limit, not under 256 MB in all.
    hog = "python -c 'import time; b = bytearray(120 * 1024 * 1024); time.sleep(30)'"
    limits = SandboxLimits(memory_mb=512, total_memory_mb=256, wall_seconds=60)

    result = sh(workspace, f"{hog} & {hog} & {hog} & {hog} & wait", limits)

    assert (result.killed_for, result.timed_out) == ("memory", False)
    assert "memory limit of 256 MB" in result.stderr
    assert sandbox_processes_after_settling() == []
