"""/health checks the database, Redis, the broker and the workers for real."""

import pytest

from tests.net import free_port


@pytest.mark.slow
def test_health_is_200_with_every_check_ok_when_a_worker_runs(client, celery_worker):
    response = client.get("/health")
    body = response.json()
    assert response.status_code == 200, body
    assert body["status"] == "ok"
    assert set(body["checks"]) == {"database", "redis", "broker", "workers"}
    assert all(value.startswith("ok") for value in body["checks"].values())


@pytest.mark.django_db
def test_health_is_503_naming_workers_when_no_worker_answers(client):
    response = client.get("/health")
    assert response.status_code == 503
    assert response.json()["failing"] == ["workers"]


@pytest.mark.django_db
def test_health_is_503_naming_broker_when_the_broker_port_is_closed(client, settings):
    settings.CELERY_BROKER_URL = f"redis://127.0.0.1:{free_port()}/0"
    response = client.get("/health")
    body = response.json()
    assert response.status_code == 503
    assert "broker" in body["failing"]
    assert body["checks"]["broker"].startswith("error")
    assert body["checks"]["database"] == "ok"
    assert body["checks"]["redis"] == "ok"
    assert "broker" in body["detail"]


@pytest.mark.django_db
def test_health_is_503_naming_redis_when_redis_is_unreachable(client, settings):
    settings.REDIS_URL = f"redis://127.0.0.1:{free_port()}/0"
    response = client.get("/health")
    assert response.status_code == 503
    assert "redis" in response.json()["failing"]
