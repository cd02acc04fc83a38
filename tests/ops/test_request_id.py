"""Request ids: echoed in X-Request-ID and carried into Celery tasks."""

import pytest

from common.logging import bind_request_id
from common.tasks import echo


@pytest.mark.django_db
def test_response_carries_a_generated_request_id(client):
    response = client.get("/projects")
    assert len(response["X-Request-ID"]) == 32


@pytest.mark.django_db
def test_a_sane_incoming_request_id_is_echoed(client):
    response = client.get("/projects", HTTP_X_REQUEST_ID="abc-123")
    assert response["X-Request-ID"] == "abc-123"


@pytest.mark.django_db
def test_an_unsafe_incoming_request_id_is_replaced(client):
    response = client.get("/projects", HTTP_X_REQUEST_ID="bad id\nwith newline")
    assert response["X-Request-ID"] != "bad id\nwith newline"


@pytest.mark.slow
def test_a_task_round_trips_through_a_real_worker_with_the_request_id(celery_worker):
    bind_request_id("req-round-trip-1")
    try:
        result = echo.delay("hello").get(timeout=20)
    finally:
        bind_request_id(None)
    assert result == {"value": "hello", "request_id": "req-round-trip-1"}
