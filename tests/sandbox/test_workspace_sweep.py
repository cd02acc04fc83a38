"""A run's workspace left behind by a killed process (still mounted, with its image) is
removed when a sandbox worker starts; a project's workspace left mounted by a killed web
process is unmounted (its files kept) when a web process starts; one that a live process
holds is never touched.

Workspaces are mounted only when the tests run as root; the tests about mounts skip
otherwise (``needs_root``), never pass without looking.
"""

import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from projects.workspace import (
    workspace_lease_acquire,
    workspace_materialize,
    workspace_remove,
    workspace_sweep_projects,
    workspace_sweep_runs,
)
from tests.net import ROOT, subprocess_env, worker_process
from tests.pipeline.conftest import wait_until
from tests.sandbox.helpers import needs_root


def _mounted(path: Path) -> bool:
    return str(path) in Path("/proc/self/mounts").read_text()


def _made_by_a_killed_child(make: Callable[[], Path]) -> Path:
    """What ``make()`` returns, run in a child process that is then SIGKILLed without
    cleaning up (leaving its workspace, lock and mount as they were)."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: make it, say where, and die
        try:
            os.close(read)
            os.write(write, str(make()).encode())
        finally:
            os.kill(os.getpid(), signal.SIGKILL)
    os.close(write)
    path = Path(os.read(read, 4096).decode())
    os.close(read)
    os.waitpid(pid, 0)
    return path


def _abandoned_workspace(root: Path) -> Path:
    """A run workspace made by a child process that is then SIGKILLed."""
    return _made_by_a_killed_child(
        lambda: workspace_materialize(files={"app.py": "x = 1\n"}, root=root)
    )


@needs_root
def test_a_workspace_whose_process_was_killed_is_unmounted_and_removed(tmp_path: Path) -> None:
    path = _abandoned_workspace(tmp_path)
    assert (path / "app.py").exists()
    assert _mounted(path)

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


def _ready(log: Path) -> bool:
    """The worker logged "ready.", which celery does right after its worker_ready handlers."""
    return log.exists() and " ready." in log.read_text(errors="replace")


@needs_root
@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_sandbox_worker_sweeps_when_it_starts_and_an_llm_worker_does_not(
    tmp_path: Path,
) -> None:
    root = tmp_path / "workspaces"
    path = _abandoned_workspace(root / "runs")
    env = subprocess_env(SANDBOX_WORKSPACE_ROOT=str(root))
    llm_log, sandbox_log = tmp_path / "llm.log", tmp_path / "sandbox.log"
    assert _mounted(path)

    try:
        with worker_process(name="llm", queues="llm,default", env=env, log=llm_log):
            wait_until(lambda: _ready(llm_log))
            after_llm = (path.exists(), _mounted(path))
        with worker_process(
            name="sandbox",
            queues="sandbox",
            pool="prefork",
            concurrency=1,
            env=env,
            log=sandbox_log,
        ):
            wait_until(lambda: _ready(sandbox_log))
            after_sandbox = (path.exists(), _mounted(path), sorted((root / "runs").iterdir()))
    finally:
        workspace_sweep_runs(root=root / "runs")  # nothing left mounted should the test fail

    assert after_llm == (True, True)
    assert after_sandbox == (False, False, [])


# --- A project's workspace (the terminal's) -----------------------------------------------


def _killed_with_a_lease(project_id: int) -> Path:
    """A child process takes a lease on the project's workspace, writes a file, and is
    SIGKILLed holding it (a web process killed with a terminal open)."""

    def fill(path: Path) -> None:
        (path / "app.py").write_text("x = 1\n")

    return _made_by_a_killed_child(
        lambda: workspace_lease_acquire(project_id=project_id, on_first=fill).path
    )


@needs_root
def test_a_project_workspace_whose_terminal_process_was_killed_is_unmounted_files_kept(
    settings, tmp_path: Path
) -> None:
    settings.SANDBOX_WORKSPACE_ROOT = str(tmp_path)
    path = _killed_with_a_lease(7)
    assert _mounted(path)

    assert workspace_sweep_projects() == 1

    assert not _mounted(path)
    lease = workspace_lease_acquire(project_id=7)  # the next terminal finds the files
    try:
        assert (lease.path / "app.py").read_text() == "x = 1\n"
    finally:
        lease.release()


@needs_root
def test_a_project_workspace_with_a_live_terminal_is_left_mounted(settings, tmp_path) -> None:
    settings.SANDBOX_WORKSPACE_ROOT = str(tmp_path)
    lease = workspace_lease_acquire(project_id=8)
    try:
        assert workspace_sweep_projects() == 0
        assert _mounted(lease.path)
    finally:
        lease.release()
    assert not _mounted(lease.path)


@needs_root
def test_a_web_process_that_starts_sweeps_the_project_workspaces(tmp_path: Path) -> None:
    root = tmp_path / "workspaces"
    code = (
        "import django, os; django.setup(); "
        "from tests.sandbox.test_workspace_sweep import _killed_with_a_lease; "
        "print(_killed_with_a_lease(9))"
    )
    env = subprocess_env(SANDBOX_WORKSPACE_ROOT=str(root))
    made = subprocess.run(  # noqa: S603 - ourselves
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, check=True
    )
    path = Path(made.stdout.split()[-1])
    assert _mounted(path)

    subprocess.run(  # noqa: S603 - ourselves
        [sys.executable, "-c", "from config.serve import _load_application; "
         "_load_application(['config.asgi:application'])"],
        cwd=ROOT, env=env, check=True, timeout=120,
    )  # fmt: skip

    assert not _mounted(path)
