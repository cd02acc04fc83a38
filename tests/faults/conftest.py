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

from tests.net import subprocess_env
from tests.pipeline.conftest import no_sandbox, script

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
