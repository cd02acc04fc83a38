"""PostgreSQL and Redis lose their connections under a running pipeline, on a real worker.

The llm worker is a real ``celery -A config worker`` process. A fault point holds it right
after a coder's answer was stored, so the fault lands at that moment every time; then either
every PostgreSQL connection of the worker is terminated, or a Redis
of this test (a ``redis-server`` with its append-only file, as a broker runs) is restarted.
The worker must stay up, the run must complete, and every model step is paid for once.
"""

import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from django.db import connection

from bench.fault_scenarios import PrivateRedis
from config.celery import app
from pipeline import canvas
from pipeline.faults import fault_held, fault_script_set
from pipeline.flow import Next
from pipeline.services import run_start
from tests.faults.conftest import Start, llm_worker
from tests.faults.test_worker_killed import assert_paid_and_completed_once
from tests.net import subprocess_env
from tests.pipeline.conftest import wait_for_run, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.faults, pytest.mark.django_db(transaction=True)]

HELD_STEP = "task:cli:coder:1"
PROMPT = "A plant watering tracker"


WORKER_APP = "aiflow-fault-worker"


def worker_database_url() -> str:
    """The test database, under an application name that marks the worker's connections."""
    url = subprocess_env()["DATABASE_URL"]
    return f"{url}{'&' if '?' in url else '?'}application_name={WORKER_APP}"


def terminate_worker_backends() -> int:
    """End every backend the worker holds (this process's own connections are spared: they
    are the harness, not the platform under test)."""
    params = connection.get_connection_params()
    params.pop("cursor_factory", None)
    with psycopg.connect(**params, autocommit=True) as killer:
        row = killer.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = current_database() AND application_name = %s",
            (WORKER_APP,),
        ).fetchone()
    return int(row[0]) if row else 0


def test_postgres_backends_killed_after_a_coder_was_paid_cost_no_second_call(
    project: Any, start: Start
) -> None:
    fault_script_set([{"point": "answer_stored", "step": HELD_STEP, "seconds": 2}])
    # No heartbeat during the hold: its statements would weed out the dead connections first.
    worker = llm_worker(
        start,
        "worker",
        "llm,sandbox,default",
        PIPELINE_HEARTBEAT_SECONDS="5",
        PIPELINE_STALE_SECONDS="30",
        DATABASE_URL=worker_database_url(),
    )
    run = run_start(project=project, user=project.owner, prompt=PROMPT)
    wait_until(fault_held, timeout=120)

    terminated = terminate_worker_backends()
    run = wait_for_run(run.id, timeout=90)

    assert terminated > 0
    assert worker.poll() is None
    assert_paid_and_completed_once(run)


@pytest.fixture
def private_redis(tmp_path: Path, settings: Any) -> Iterator[PrivateRedis]:
    """A Redis this test may restart; this process's Redis state (faults, counts) uses it."""
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed")
    server = PrivateRedis(tmp_path / "redis")
    server.start()
    settings.REDIS_URL = server.url
    yield server
    server.stop()


def test_a_redis_restart_while_a_coder_holds_its_answer_keeps_the_worker_and_the_run(
    project: Any, start: Start, private_redis: PrivateRedis
) -> None:
    fault_script_set([{"point": "answer_stored", "step": HELD_STEP, "seconds": 3}])
    worker = llm_worker(start, "worker", "llm,sandbox,default", TEST_REDIS_URL=private_redis.url)
    run = run_start(project=project, user=project.owner, prompt=PROMPT)
    with app.connection_for_write(private_redis.url) as broker:  # the worker's broker
        canvas.canvas_for(run.id, Next.design(1)).apply_async(connection=broker)
    wait_until(fault_held, timeout=120)

    private_redis.stop()
    private_redis.start()
    restarted_at = time.monotonic()
    run = wait_for_run(run.id, timeout=90)
    print(f"completed {time.monotonic() - restarted_at:.1f}s after the restart")

    assert worker.poll() is None
    assert_paid_and_completed_once(run)
