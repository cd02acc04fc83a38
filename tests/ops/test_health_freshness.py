"""/health answers what is true now: never from a view older than HEALTH_MAX_AGE_SECONDS, never
from a failing view made before the request, and a database failure is named.

Measured before: after an idle spell the first answer was the view of the last request
(a SIGKILLed worker reported healthy 35 s later), and a web process answered 503 "no worker
consumes the llm, default queue" from a view made before its workers started, after they had
reported in.
"""

import concurrent.futures
import json
import os
import signal
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from django.conf import settings as django_settings

from config import health
from tests.net import free_port, subprocess_env, web_server, worker_process


@pytest.fixture(autouse=True)
def fresh_view() -> Iterator[None]:
    health.monitor.forget()
    yield
    health.monitor.forget()


def _store() -> Any:
    return redis.Redis.from_url(django_settings.REDIS_URL)


def _beat(name: str, at: float) -> None:
    body = {"name": name, "queues": ["llm", "sandbox", "default"], "at": at}
    _store().hset(health.WORKERS_KEY, name, json.dumps(body))


def _get(url: str) -> tuple[int, dict[str, Any]]:
    try:
        with urllib.request.urlopen(url + "/health", timeout=60) as response:  # noqa: S310
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


@pytest.mark.django_db
def test_a_view_past_the_max_age_is_not_answered_after_an_idle_spell(client, settings):
    settings.HEALTH_REFRESH_SECONDS = 0.2
    settings.HEALTH_MAX_AGE_SECONDS = 0.5
    _beat("all@test", time.time())
    assert client.get("/health").status_code == 200
    _store().hdel(health.WORKERS_KEY, "all@test")  # the worker stopped

    time.sleep(1.0)  # past the max age, nobody asks
    response = client.get("/health")

    assert response.status_code == 503
    assert response.json()["checks"]["workers"] == "error: no worker reported in the last 10s"


@pytest.mark.django_db
def test_a_failing_view_is_not_answered_once_the_failure_has_ended(client, settings):
    settings.HEALTH_REFRESH_SECONDS = 3600  # the view would otherwise be kept for an hour
    settings.HEALTH_MAX_AGE_SECONDS = 3600
    before = client.get("/health")
    _beat("all@test", time.time())  # a worker reports in

    after = client.get("/health")

    assert before.json()["checks"]["workers"] == "error: no worker reported in the last 10s"
    assert (after.status_code, after.json()["checks"]["workers"]) == (200, "ok (1 worker)")
    _store().hdel(health.WORKERS_KEY, "all@test")


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_killed_worker_is_reported_by_the_first_health_after_an_idle_spell(
    client, settings, tmp_path
):
    settings.HEALTH_WORKER_STALE_SECONDS = 2
    settings.HEALTH_MAX_AGE_SECONDS = 2
    env = subprocess_env(HEALTH_HEARTBEAT_SECONDS="0.5")
    with worker_process(name="doomed", env=env, log=tmp_path / "worker.log") as worker:
        healthy = client.get("/health")
        os.kill(worker.pid, signal.SIGKILL)
        worker.wait()
        # No request while the heartbeat goes stale and the view passes its max age.
        time.sleep(settings.HEALTH_WORKER_STALE_SECONDS + settings.HEALTH_MAX_AGE_SECONDS + 1)

        first = client.get("/health")

    assert healthy.json()["checks"]["workers"] == "ok (1 worker)"
    assert first.status_code == 503
    assert first.json()["checks"]["workers"] == "error: no worker reported in the last 2s"


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_once_the_workers_reported_in_no_health_says_a_queue_has_no_consumer(tmp_path):
    with web_server(env=subprocess_env(WEB_PROCESSES="2")) as (url, _):
        # Both web processes make their views before any worker runs (a start-up probe).
        early = [_get(url) for _ in range(10)]
        # Both workers have reported in once their blocks start (worker_process waits for each
        # heartbeat); from then on no answer may say a queue has no consumer.
        with (
            worker_process(name="llm", queues="llm,default", log=tmp_path / "llm.log"),
            worker_process(name="sandbox", queues="sandbox", log=tmp_path / "sandbox.log"),
            concurrent.futures.ThreadPoolExecutor(8) as pool,
        ):
            answers = list(pool.map(lambda _: _get(url), range(80)))

    assert {body["checks"]["workers"] for _, body in early} == {
        "error: no worker reported in the last 10s"
    }
    assert {body["checks"]["workers"] for _, body in answers} == {"ok (2 workers)"}


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_database_that_cannot_be_reached_is_named(tmp_path):
    env = subprocess_env(
        DATABASE_URL=f"postgres://postgres@127.0.0.1:{free_port()}/aiflow",
        DB_POOL_TIMEOUT="1",
        WEB_PROCESSES="1",
    )
    with web_server(env=env) as (url, _):
        status, body = _get(url)

    assert status == 503
    assert "database" in body["failing"]
    assert body["checks"]["database"] == "error: unreachable"
