"""Request ids: echoed in X-Request-ID, stored with a run, and logged by each task."""

from typing import Any

import pytest
from celery import shared_task

from common.logging import bind_request_id, get_request_id
from common.tasks import echo


@shared_task(name="tests.ops.seen_request_id_of_run")
def seen_request_id_of_run(run_id: int, step: str = "") -> str | None:
    """What a task of run ``run_id`` logs as its request id."""
    return get_request_id()


def _queued_under(request_id: str | None, task: Any, *args: Any) -> Any:
    bind_request_id(request_id)
    try:
        return task.delay(*args).get(timeout=30)
    finally:
        bind_request_id(None)


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


@pytest.mark.django_db
def test_starting_a_run_stores_the_request_id_of_the_request(api_client, project):
    from pipeline.models import Run

    response = api_client.post(
        f"/projects/{project.id}/generate",
        {"prompt": "A CLI timer"},
        format="json",
        HTTP_X_REQUEST_ID="req-generate-1",
    )
    assert response.status_code == 202
    assert Run.objects.get(id=response.json()["run_id"]).request_id == "req-generate-1"


@pytest.mark.slow
def test_a_task_round_trips_through_a_real_worker_with_the_request_id(celery_worker):
    assert _queued_under("req-round-trip-1", echo, "hello") == {
        "value": "hello",
        "request_id": "req-round-trip-1",
    }


@pytest.mark.slow
def test_a_run_task_logs_the_id_of_the_request_that_started_the_run(celery_worker, project):
    from pipeline.models import Run

    run = Run.objects.create(project=project, prompt="p", request_id="req-started-run")
    # Queued later by another request (an approval, a resume) or by the reaper (none).
    assert _queued_under("req-approve", seen_request_id_of_run, run.id) == "req-started-run"
    assert _queued_under(None, seen_request_id_of_run, run.id) == "req-started-run"


@pytest.mark.slow
def test_a_run_task_of_a_run_without_a_stored_request_id_logs_none(celery_worker, project):
    from pipeline.models import Run

    run = Run.objects.create(project=project, prompt="p")
    assert _queued_under("req-resume", seen_request_id_of_run, run.id) is None


@pytest.mark.slow
def test_a_worker_thread_does_not_carry_one_tasks_request_id_into_the_next(transactional_db):
    from celery.contrib.testing.worker import start_worker

    from config.celery import app

    # One thread: the second task runs where the first one did.
    with start_worker(
        app, pool="threads", concurrency=1, perform_ping_check=False, loglevel="WARNING"
    ):
        assert _queued_under("req-first", echo, "a")["request_id"] == "req-first"
        assert _queued_under(None, echo, "b")["request_id"] is None
