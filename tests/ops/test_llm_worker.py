"""The llm worker runs one Celery process per CPU: each reports in, one that dies is started
again, SIGTERM stops them all, and a SIGKILL to the process group leaves none behind."""

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import redis
from django.conf import settings

from config.health import WORKERS_KEY
from config.llm_worker import plan
from tests.net import ROOT, child_pids, subprocess_env, worker_started
from tests.pipeline.conftest import wait_until


def test_the_threads_are_shared_out_and_one_process_keeps_its_old_name():
    assert plan(1, 32) == [("llm", 32)]
    assert plan(2, 32) == [("llm1", 16), ("llm2", 16)]
    assert plan(3, 32) == [("llm1", 11), ("llm2", 11), ("llm3", 11)]
    assert plan(4, 2) == [("llm1", 1), ("llm2", 1), ("llm3", 1), ("llm4", 1)]


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _start() -> subprocess.Popen:
    redis.Redis.from_url(settings.REDIS_URL).delete(WORKERS_KEY)
    return subprocess.Popen(
        [sys.executable, "-m", "config.llm_worker", "--loglevel", "WARNING"],
        cwd=ROOT,
        env=subprocess_env(LLM_WORKER_PROCESSES="2", LLM_WORKER_CONCURRENCY="4"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # its own process group, as a process manager gives it
    )


def _both_reported_in(supervisor: subprocess.Popen) -> set[int]:
    """Wait until llm1 and llm2 report in; the supervisor's two children."""
    worker_started("llm1", supervisor)
    worker_started("llm2", supervisor)
    return wait_until(
        lambda: (found := child_pids(supervisor.pid)) and len(found) == 2 and found, timeout=90
    )


@pytest.mark.slow
@pytest.mark.django_db
def test_two_processes_report_in_one_killed_is_replaced_and_sigterm_stops_both():
    supervisor = _start()
    try:
        children = _both_reported_in(supervisor)
        beats = [
            json.loads(beat) for beat in redis.Redis.from_url(settings.REDIS_URL).hvals(WORKERS_KEY)
        ]
        assert sorted(
            (b["name"].split("@")[0], b["concurrency"], b["pid"] in children) for b in beats
        ) == [
            ("llm1", 2, True),
            ("llm2", 2, True),
        ]

        killed = min(children)
        os.kill(killed, signal.SIGKILL)
        replaced = wait_until(
            lambda: (found := child_pids(supervisor.pid)) - children and len(found) == 2 and found,
            timeout=90,
        )
        assert killed not in replaced and len(replaced & children) == 1

        supervisor.send_signal(signal.SIGTERM)
        assert supervisor.wait(timeout=60) == 0
        assert not any(_alive(pid) for pid in replaced)
    finally:
        if supervisor.poll() is None:
            os.killpg(supervisor.pid, signal.SIGKILL)
            supervisor.wait()


@pytest.mark.slow
@pytest.mark.django_db
def test_a_sigkill_to_the_process_group_kills_every_worker_at_once():
    """What the fault suite does to "kill the llm worker": no process may survive it."""
    supervisor = _start()
    try:
        children = _both_reported_in(supervisor)
        # In the group, not in sessions of their own (which would leave them running on).
        assert {os.getpgid(pid) for pid in children} == {supervisor.pid}
    finally:
        os.killpg(supervisor.pid, signal.SIGKILL)
        supervisor.wait()
    wait_until(lambda: not any(_alive(pid) for pid in children), timeout=10)
