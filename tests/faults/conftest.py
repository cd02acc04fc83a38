"""The fault tests share the pipeline tests' fixtures (offline scripting, no sandbox), and
start real celery processes (workers, beat) they can kill."""

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from pipeline.faults import fault_held, fault_script_set
from pipeline.models import Run
from pipeline.services import run_start
from tests.net import subprocess_env
from tests.pipeline.conftest import no_sandbox, script, wait_for_run, wait_until

__all__ = ["no_sandbox", "script"]

ROOT = Path(__file__).resolve().parents[2]
CELERY = str(Path(sys.executable).with_name("celery"))

Start = Callable[..., subprocess.Popen]


@pytest.fixture
def start(tmp_path: Path) -> Iterator[Start]:
    """Start celery processes (``worker`` or ``beat``) on this test's database and Redis
    (keyword arguments are further environment variables: ``TEST_REDIS_URL`` for another Redis)."""
    env = subprocess_env(
        OFFLINE_LATENCY_MS="300",
        PIPELINE_HEARTBEAT_SECONDS="0.5",
        PIPELINE_STALE_SECONDS="3",
        PIPELINE_REAPER_SECONDS="1",
        PIPELINE_FAULT_POINTS="true",
    )
    started: list[subprocess.Popen] = []

    def start(name: str, *args: str, sandbox: bool = False, **extra: str) -> subprocess.Popen:
        log = (tmp_path / f"{name}.log").open("wb")
        if args[0] == "worker":
            args = (*args, "-n", f"{name}@%h", "--without-mingle", "--without-gossip")
        else:
            args = (*args, "-s", str(tmp_path / "beat-schedule"))
        process = subprocess.Popen(
            [CELERY, "-A", "config", *args, "--loglevel", "INFO"],
            cwd=ROOT,
            env={**env, "SANDBOX_TESTS_ENABLED": "true" if sandbox else "false", **extra},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        started.append(process)
        return process

    yield start
    for process in started:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


def llm_worker(start: Start, name: str, queues: str = "llm,default", **kw: Any) -> Any:
    return start(name, "worker", "-Q", queues, "--pool", "threads", "-c", "8", **kw)


def kill(process: subprocess.Popen) -> float:
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    return time.monotonic()


def killed_at_point(
    start: Start,
    project: Any,
    *,
    point: str,
    step: str,
    timeout: float = 180,
    while_held: Callable[[Run], None] | None = None,
    **env: str,
) -> Run:
    """A run on a doomed llm worker held at fault ``point`` of ``step`` and SIGKILLed there;
    then beat and a rescuing llm worker start (``env`` in all three) and nothing is called by
    hand: the finished run. ``while_held`` looks at the run while the worker is held."""
    fault_script_set([{"point": point, "step": step, "seconds": 600}])
    doomed = llm_worker(start, "doomed", "llm,sandbox,default", **env)
    run = run_start(project=project, user=project.owner, prompt="A habit tracker with streaks")
    wait_until(fault_held, timeout=120)
    if while_held is not None:
        while_held(run)

    killed_at = kill(doomed)
    start("beat", "beat", **env)
    llm_worker(start, "rescuer", "llm,sandbox,default", **env)
    run = wait_for_run(run.id, timeout=timeout)
    print(f"completed {time.monotonic() - killed_at:.1f}s after the kill")
    assert fault_held() == [{"point": point, "step": step}]
    return run
