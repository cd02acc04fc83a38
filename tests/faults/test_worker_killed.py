"""A worker killed with SIGKILL while a coder step runs: a new worker finishes the run.

The workers are real ``celery -A config worker`` processes on the test database and Redis
db; the first one is killed mid-step, the beat reaper's task (run by the second worker)
resumes the run whose heartbeat went stale, and the run completes without any duplicated
row and without paying again for a step that had finished.
"""

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from pipeline.models import Run, Step
from pipeline.services import run_start
from pipeline.tasks import reap_stale_runs
from projects.models import Artifact
from providers.offline.answers import calls_for
from tests.net import subprocess_env
from tests.pipeline.conftest import wait_for_run, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.faults, pytest.mark.django_db(transaction=True)]

ROOT = Path(__file__).resolve().parents[2]
STALE_SECONDS = 3


@pytest.fixture
def start_worker(tmp_path: Path) -> Iterator[Callable[[str], subprocess.Popen]]:
    """Start ``celery -A config worker`` subprocesses on this test's database and Redis."""
    env = subprocess_env(
        OFFLINE_LATENCY_MS="1500",
        PIPELINE_HEARTBEAT_SECONDS="0.5",
        PIPELINE_STALE_SECONDS=str(STALE_SECONDS),
        SANDBOX_TESTS_ENABLED="false",
    )
    started: list[subprocess.Popen] = []

    def start(name: str) -> subprocess.Popen:
        log = (tmp_path / f"{name}.log").open("wb")
        process = subprocess.Popen(
            [
                str(Path(sys.executable).with_name("celery")),
                "-A",
                "config",
                "worker",
                "-Q",
                "llm,sandbox,default",
                "--pool",
                "threads",
                "-c",
                "8",
                "-n",
                f"{name}@%h",
                "--without-mingle",
                "--without-gossip",
                "--loglevel",
                "INFO",
            ],
            cwd=ROOT,
            env=env,
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


def test_a_run_survives_its_worker_killed_during_a_coder_step(
    project: Any, start_worker: Callable[[str], subprocess.Popen]
) -> None:
    first = start_worker("doomed")
    run = run_start(project=project, user=project.owner, prompt="A habit tracker with streaks")
    running = wait_until(
        lambda: Step.objects.filter(run=run, role="coder", status=Step.Status.RUNNING).first(),
        timeout=90,
    )

    os.killpg(first.pid, signal.SIGKILL)
    first.wait()
    finished_before = set(
        Step.objects.filter(run=run, status=Step.Status.SUCCEEDED).values_list("key", flat=True)
    )
    time.sleep(STALE_SECONDS + 1)  # the killed worker's heartbeats stop; the run goes stale
    start_worker("rescuer")
    reap_stale_runs.delay()
    run = wait_for_run(run.id, timeout=180)

    calls = calls_for(run.id)
    keys = list(Step.objects.filter(run=run).values_list("key", flat=True))
    paths = list(Artifact.objects.filter(run=run).values_list("path", flat=True))
    assert run.status == Run.Status.COMPLETED
    assert run.resume_count == 1
    assert running.key not in finished_before
    assert {key: calls[key] for key in finished_before} == dict.fromkeys(finished_before, 1)
    # The killed step ran again (the offline model counts a call after its latency, so
    # the interrupted attempt may or may not have been counted).
    assert Step.objects.get(run=run, key=running.key).status == Step.Status.SUCCEEDED
    assert calls[running.key] >= 1
    assert len(keys) == len(set(keys))
    assert paths and len(paths) == len(set(paths))
