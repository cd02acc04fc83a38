"""A run's workspace left behind by a killed process (still mounted, with its image) is
removed when a sandbox worker starts; one that a live process holds is never touched."""

import os
import signal
import subprocess
from pathlib import Path
from types import SimpleNamespace

from kombu import Queue

from config.celery import _sweep_abandoned_workspaces
from projects.workspace import (
    workspace_materialize,
    workspace_quota_enforced,
    workspace_remove,
    workspace_sweep_runs,
)


def _mounted(path: Path) -> bool:
    return str(path) in Path("/proc/self/mounts").read_text()


def _abandoned_workspace(root: Path) -> Path:
    """A workspace made by a child process that is then SIGKILLed, leaving it as it was."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: make it, say where, and die without cleaning up
        try:
            os.close(read)
            path = workspace_materialize(files={"app.py": "x = 1\n"}, root=root)
            os.write(write, str(path).encode())
        finally:
            os.kill(os.getpid(), signal.SIGKILL)
    os.close(write)
    path = Path(os.read(read, 4096).decode())
    os.close(read)
    os.waitpid(pid, 0)
    return path


def test_a_workspace_whose_process_was_killed_is_unmounted_and_removed(tmp_path: Path) -> None:
    path = _abandoned_workspace(tmp_path)
    assert (path / "app.py").exists()
    assert _mounted(path) == workspace_quota_enforced()

    assert workspace_sweep_runs(root=tmp_path) == 1

    assert not _mounted(path)
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_a_workspace_in_use_is_left_alone(tmp_path: Path) -> None:
    live = workspace_materialize(files={"app.py": "x = 1\n"}, root=tmp_path)
    seen_by_another_process = subprocess.run(
        ["flock", "--nonblock", str(live.with_suffix(".lock")), "true"], check=False
    ).returncode
    try:
        assert workspace_sweep_runs(root=tmp_path) == 0
        assert (live / "app.py").read_text() == "x = 1\n"
        assert seen_by_another_process != 0  # its lock is held, for every process
    finally:
        workspace_remove(workspace=live)


def test_a_sandbox_worker_sweeps_when_it_starts_and_an_llm_worker_does_not(
    settings, tmp_path: Path
) -> None:
    settings.SANDBOX_WORKSPACE_ROOT = str(tmp_path)
    path = _abandoned_workspace(tmp_path / "runs")

    def worker(*queues: str) -> SimpleNamespace:
        return SimpleNamespace(task_consumer=SimpleNamespace(queues=[Queue(q) for q in queues]))

    _sweep_abandoned_workspaces(sender=worker("llm", "default"))
    assert path.exists()

    _sweep_abandoned_workspaces(sender=worker("sandbox"))
    assert not path.exists()
    assert not _mounted(path)
