"""/health: database, Redis, broker, workers and sandbox, from a view kept fresh in the
background; a failing check is named with a plain reason, never an exception's text."""

import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from django.conf import settings as django_settings

from config import health
from tests.net import free_port

CHECKS = {"database", "redis", "broker", "workers", "sandbox"}
# Every value a check may show: the answer never carries an exception's text.
PLAIN = {
    "ok",
    "ok (unsafe-local: not confined)",
    "error: unreachable",
    "error: timed out",
    "error: refused the credentials",
    "error: failed",
    "error: broker unreachable",
    "error: heartbeats unreadable: Redis unreachable",
    "error: no worker reported in the last 10s",
    "error: bubblewrap is not installed or not usable here",
    "error: bubblewrap cannot start a sandbox",
}


@pytest.fixture(autouse=True)
def fresh_view() -> Iterator[None]:
    """Each test starts without a view (and leaves none behind for other tests)."""
    health.monitor.forget()
    yield
    health.monitor.forget()


def _workers() -> dict[str, Any]:
    raw = redis.Redis.from_url(django_settings.REDIS_URL).hgetall(health.WORKERS_KEY)
    return {name.decode(): json.loads(value) for name, value in raw.items()}


@pytest.fixture
def reported_in() -> Iterator[None]:
    """A heartbeat, just now, of a worker serving every queue (as a live worker writes it)."""
    beat = {"name": "all@test", "queues": ["llm", "sandbox", "default"], "at": time.time()}
    store = redis.Redis.from_url(django_settings.REDIS_URL)
    store.hset(health.WORKERS_KEY, "all@test", json.dumps(beat))
    yield
    store.hdel(health.WORKERS_KEY, "all@test")


@pytest.mark.slow
def test_health_is_200_with_every_check_ok_when_a_worker_serves_every_queue(client, celery_worker):
    response = client.get("/health")

    body = response.json()
    assert response.status_code == 200, body
    assert body == {
        "status": "ok",
        "checks": {
            "database": "ok",
            "redis": "ok",
            "broker": "ok",
            "workers": "ok (1 worker)",
            "sandbox": "ok",
        },
    }


@pytest.mark.slow
def test_a_queue_no_worker_consumes_is_named(client, transactional_db):
    from celery.contrib.testing.worker import start_worker

    from config.celery import app

    with start_worker(
        app, pool="threads", queues=["llm", "default"], perform_ping_check=False, loglevel="WARNING"
    ):
        body = client.get("/health").json()

    assert body["failing"] == ["workers"]
    assert body["checks"]["workers"] == "error: no worker consumes the sandbox queue"


@pytest.mark.slow
def test_a_worker_reports_its_queues_while_it_runs_and_withdraws_when_it_stops(
    transactional_db,
):
    from celery.contrib.testing.worker import start_worker

    from config.celery import app

    with start_worker(
        app, pool="threads", queues=["sandbox"], perform_ping_check=False, loglevel="WARNING"
    ):
        running = _workers()
    assert [beat["queues"] for beat in running.values()] == [["sandbox"]]
    assert _workers() == {}


@pytest.mark.django_db
def test_health_is_503_naming_workers_when_no_worker_reported(client):
    response = client.get("/health")

    assert response.status_code == 503
    assert response.json()["failing"] == ["workers"]
    assert response.json()["checks"]["workers"] == "error: no worker reported in the last 10s"


@pytest.mark.django_db
def test_a_worker_not_heard_from_lately_counts_as_gone(client):
    beat = {"name": "llm@gone", "queues": ["llm", "sandbox", "default"], "at": time.time() - 11}
    store = redis.Redis.from_url(django_settings.REDIS_URL)
    store.hset(health.WORKERS_KEY, "llm@gone", json.dumps(beat))

    body = client.get("/health").json()

    assert body["checks"]["workers"] == "error: no worker reported in the last 10s"
    assert store.hexists(health.WORKERS_KEY, "llm@gone") is False


@pytest.mark.django_db
def test_health_is_503_naming_the_broker_when_its_port_is_closed(client, settings):
    settings.CELERY_BROKER_URL = f"redis://127.0.0.1:{free_port()}/0"

    response = client.get("/health")

    body = response.json()
    assert response.status_code == 503
    assert body["failing"] == ["broker", "workers"]
    assert body["checks"]["broker"] == "error: unreachable"
    assert (body["checks"]["database"], body["checks"]["redis"]) == ("ok", "ok")
    assert body["detail"] == "Unhealthy: broker, workers"


@pytest.mark.django_db
def test_health_is_503_naming_redis_when_redis_is_unreachable(client, settings):
    settings.REDIS_URL = f"redis://127.0.0.1:{free_port()}/0"

    response = client.get("/health")

    assert response.status_code == 503
    assert response.json()["checks"]["redis"] == "error: unreachable"


@pytest.mark.django_db
def test_a_failing_check_shows_a_plain_reason_never_the_exceptions_text(client, settings):
    port = free_port()
    settings.CELERY_BROKER_URL = f"redis://:hunter2-broker@127.0.0.1:{port}/0"
    settings.REDIS_URL = f"redis://:hunter2-redis@127.0.0.1:{port}/0"

    response = client.get("/health")

    text = response.content.decode()
    assert set(response.json()["checks"].values()) <= PLAIN
    for leaked in ("hunter2", "127.0.0.1", str(port), "Error", "Connection"):
        assert leaked not in text


@pytest.mark.django_db
def test_health_names_the_sandbox_when_bubblewrap_is_missing(client, settings):
    settings.SANDBOX_BWRAP = "/nonexistent/bwrap"

    body = client.get("/health").json()

    assert "sandbox" in body["failing"]
    assert body["checks"]["sandbox"] == "error: bubblewrap is not installed or not usable here"


@pytest.mark.django_db
def test_health_names_the_sandbox_when_bubblewrap_cannot_start_one(client, settings):
    settings.SANDBOX_BWRAP = "/bin/false"

    body = client.get("/health").json()

    assert body["checks"]["sandbox"] == "error: bubblewrap cannot start a sandbox"


@pytest.fixture
def counted_checks(monkeypatch) -> dict[str, Any]:
    """The database check, counted, and able to hang until released."""
    state: dict[str, Any] = {"calls": 0, "release": threading.Event(), "hang": False}
    state["release"].set()
    real = health.check_database

    def counted() -> str:
        state["calls"] += 1
        if state["hang"]:
            state["release"].wait(30)
        return real()

    monkeypatch.setattr(health, "check_database", counted)
    return state


@pytest.mark.django_db
def test_many_requests_are_answered_from_one_refresh(client, settings, counted_checks, reported_in):
    settings.HEALTH_REFRESH_SECONDS = 3600
    settings.HEALTH_MAX_AGE_SECONDS = 3600

    statuses = {client.get("/health").status_code for _ in range(50)}

    assert statuses == {200}
    assert counted_checks["calls"] == 1


@pytest.mark.django_db(transaction=True)
def test_an_old_view_is_refreshed_in_the_background_while_requests_get_answers(
    client, settings, counted_checks, reported_in
):
    settings.HEALTH_MAX_AGE_SECONDS = 3600
    first = client.get("/health").json()
    assert first["status"] == "ok"
    settings.HEALTH_REFRESH_SECONDS = 0  # every view is now old
    counted_checks["hang"] = True
    counted_checks["release"].clear()

    # The refresh hangs on the database; requests keep getting the view they had.
    answers = [client.get("/health").json() for _ in range(5)]
    deadline = time.monotonic() + 10
    while counted_checks["calls"] < 2 and time.monotonic() < deadline:
        time.sleep(0.01)  # the background refresh reaches the database check
    answers += [client.get("/health").json() for _ in range(5)]
    in_flight = counted_checks["calls"]
    counted_checks["release"].set()

    assert answers == [first] * 10
    assert in_flight == 2  # one refresh at a time, however many requests came
