"""Deliveries: written with their event, signed as Standard Webhooks says, retried with
backoff through an outage, at least once with one id per message, never to a refused address.

The receiver is a local HTTP server; every signature is checked with the specification's
reference library (``standardwebhooks``). Deliveries go out through a real Celery worker, or,
where the test plays out hours of backoff, one attempt at a time with the row's due time
brought forward (the schedule itself is what is checked, not a clock).
"""

import json
from datetime import timedelta
from typing import Any

import pytest
from django.db import transaction
from django.utils import timezone

from pipeline.events import publish
from pipeline.models import Run
from tests.net import free_port
from tests.pipeline.conftest import wait_for_run, wait_until
from tests.stub_http import RecordingServer
from webhooks.models import Delivery
from webhooks.services import (
    deliveries_sweep,
    delivery_attempt,
    delivery_redeliver,
    endpoint_create,
    retry_delay,
    retry_schedule,
)

from .conftest import Receiver, body_of, make_run, verify_fails

pytestmark = pytest.mark.django_db(transaction=True)


def endpoint_for(project: Any, url: str, events: list[str] | None = None) -> tuple[Any, str]:
    return endpoint_create(project=project, url=url, events=events or ["run.completed"])


def attempt_now(delivery: Delivery) -> str | None:
    """The delivery's next attempt, now (as if its backoff had passed)."""
    Delivery.objects.filter(id=delivery.id).update(next_attempt_at=timezone.now())
    return delivery_attempt(delivery_id=delivery.id)


@pytest.mark.slow
def test_a_completed_run_is_delivered_once_signed_as_the_reference_library_verifies(
    celery_worker: Any,
    api_client: Any,
    project: Any,
    receiver: Receiver,
    local_webhooks: Any,
    no_sandbox: None,
) -> None:
    created = api_client.post(
        f"/projects/{project.id}/webhooks",
        {"url": receiver.url, "events": ["run.completed", "run.failed"]},
        format="json",
    ).json()
    receiver.secret = created["secret"]
    prompt = "A todo list manager with tags"

    response = api_client.post(
        f"/projects/{project.id}/generate", {"prompt": prompt}, format="json"
    )
    run = wait_for_run(response.json()["run_id"], timeout=240)
    wait_until(lambda: Delivery.objects.filter(status="delivered").exists(), timeout=60)

    assert run.status == Run.Status.COMPLETED
    delivery = Delivery.objects.get()
    [payload] = receiver.verified()
    [seen] = receiver.requests
    assert seen.method == "POST" and seen.path == "/hooks"
    assert seen.headers["webhook-id"] == delivery.message_id
    assert seen.headers["content-type"] == "application/json"
    assert (delivery.status, delivery.attempts, delivery.response_code) == ("delivered", 1, 200)
    assert payload["type"] == "run.completed"
    assert payload["data"]["run"]["id"] == run.id
    assert payload["data"]["run"]["status"] == "completed"
    assert payload["data"]["project"] == {"id": project.id, "name": project.name}
    assert payload["data"]["run"]["api_url"].endswith(f"/runs/{run.id}")
    text = seen.body.decode()
    assert prompt not in text
    for artifact in run.artifacts.all():
        from projects.artifacts import artifact_read

        content = artifact_read(artifact=artifact)
        assert len(content) < 40 or content.decode(errors="replace")[:200] not in text


def test_every_attempt_is_signed_afresh_and_a_wrong_secret_fails_verification(
    project: Any, receiver: Receiver, local_webhooks: Any
) -> None:
    receiver.statuses = [500]
    _, receiver.secret = endpoint_for(project, receiver.url)
    run = make_run(project, status="completed")
    publish(run_id=run.id, type="run.completed", payload={})
    delivery = Delivery.objects.get()

    assert attempt_now(delivery) == "pending"
    assert attempt_now(delivery) == "delivered"

    first, second = receiver.requests
    assert len(receiver.verified()) == 2
    assert first.body == second.body
    assert first.headers["webhook-id"] == second.headers["webhook-id"] == delivery.message_id
    other_secret = endpoint_for(project, receiver.url)[1]
    assert verify_fails(other_secret, first)
    tampered = type(first)(**{**vars(first), "body": first.body.replace(b"completed", b"failed")})
    assert verify_fails(receiver.secret, tampered)


def test_a_receiver_answering_500_sees_retries_then_the_delivery_with_one_id(
    celery_worker: Any, project: Any, receiver: Receiver, local_webhooks: Any
) -> None:
    receiver.statuses = [500, 502, 503]
    _, receiver.secret = endpoint_for(project, receiver.url)
    run = make_run(project, status="completed")

    publish(run_id=run.id, type="run.completed", payload={})
    wait_until(lambda: Delivery.objects.filter(status="delivered").exists(), timeout=60)

    delivery = Delivery.objects.get()
    assert (delivery.status, delivery.attempts, delivery.response_code) == ("delivered", 4, 200)
    assert receiver.ids() == [delivery.message_id] * 4
    assert [p["type"] for p in receiver.verified()] == ["run.completed"] * 4


def test_a_receiver_down_for_five_minutes_loses_nothing(project: Any, settings: Any) -> None:
    """The default schedule, played one attempt at a time: nothing listens on the port (the
    connection is refused) until the waits between attempts add up to five minutes; then the
    receiver comes back and the next attempt delivers the message, once."""
    settings.WEBHOOKS_ALLOW_LOCAL = True
    port = free_port()
    url = f"http://127.0.0.1:{port}/hooks"
    _, secret = endpoint_for(project, url)
    run = make_run(project, status="completed")
    publish(run_id=run.id, type="run.completed", payload={})
    delivery = Delivery.objects.get()

    waits: list[float] = []
    outcomes = []
    while sum(waits) < 5 * 60:
        outcomes.append(attempt_now(delivery))
        row = Delivery.objects.get(id=delivery.id)
        waits.append(retry_delay(row.attempts))
        assert row.next_attempt_at - row.last_attempt_at >= timedelta(seconds=waits[-1])
    with RecordingServer(port=port) as back:
        outcomes.append(attempt_now(delivery))

    row = Delivery.objects.get(id=delivery.id)
    assert outcomes == ["pending"] * (len(outcomes) - 1) + ["delivered"]
    assert waits == [5, 20, 80, 320]  # seconds of waiting while down: past five minutes
    assert (row.status, row.attempts, row.response_code) == ("delivered", 5, 200)
    assert [seen.headers["webhook-id"] for seen in back.requests] == [delivery.message_id]
    from standardwebhooks import Webhook

    assert Webhook(secret).verify(back.requests[0].body, back.requests[0].headers)["type"] == (
        "run.completed"
    )


def test_the_default_schedule_retries_for_a_day_with_growing_waits(settings: Any) -> None:
    offsets = retry_schedule()
    waits = [later - earlier for earlier, later in zip(offsets, offsets[1:], strict=False)]

    assert waits[:5] == [5.0, 20.0, 80.0, 320.0, 1280.0]
    assert max(waits) == 3 * 3600.0
    assert offsets[-1] <= 24 * 3600 < offsets[-1] + 3 * 3600
    assert len(offsets) == 14


def test_the_retry_window_ends_in_a_failed_delivery(
    project: Any, receiver: Receiver, local_webhooks: Any
) -> None:
    local_webhooks.WEBHOOKS_RETRY_WINDOW_SECONDS = 1.0
    receiver.statuses = [500] * 10
    endpoint_for(project, receiver.url)
    run = make_run(project, status="completed")
    publish(run_id=run.id, type="run.completed", payload={})
    delivery = Delivery.objects.get()
    Delivery.objects.filter(id=delivery.id).update(
        window_started_at=timezone.now() - timedelta(seconds=10)
    )

    assert attempt_now(delivery) == "failed"

    row = Delivery.objects.get(id=delivery.id)
    assert (row.attempts, row.response_code, row.next_attempt_at) == (1, 500, None)
    assert "retry window ended" in row.error


def test_an_event_reaches_each_listening_endpoint_once_under_one_id(
    celery_worker: Any, project: Any, local_webhooks: Any
) -> None:
    first, second, deaf = Receiver(), Receiver(), Receiver()
    try:
        endpoint_for(project, first.url, ["run.failed"])
        endpoint_for(project, second.url, ["run.completed", "run.failed"])
        endpoint_for(project, deaf.url, ["run.completed"])
        run = make_run(project, status="failed", error_code="wall_time")

        publish(run_id=run.id, type="run.failed", payload={"reason": "wall_time"})
        wait_until(lambda: Delivery.objects.filter(status="delivered").count() == 2, timeout=60)

        assert len(first.requests) == len(second.requests) == 1
        assert deaf.requests == []
        assert first.ids() == second.ids()
        assert first.requests[0].body == second.requests[0].body
        data = body_of(first.requests[0])["data"]
        assert (data["run"]["error_code"], data["run"]["reason"]) == (
            "wall_time",
            "The run took too long.",
        )
    finally:
        for receiver in (first, second, deaf):
            receiver.close()


def test_deliveries_are_written_in_the_events_transaction(
    project: Any, receiver: Receiver, local_webhooks: Any
) -> None:
    endpoint_for(project, receiver.url)
    run = make_run(project, status="completed")

    with pytest.raises(RuntimeError), transaction.atomic():
        publish(run_id=run.id, type="run.completed", payload={})
        assert Delivery.objects.count() == 1
        raise RuntimeError("the event's transaction rolls back")

    assert (run.events.count(), Delivery.objects.count()) == (0, 0)
    publish(run_id=run.id, type="run.completed", payload={})
    assert (run.events.count(), Delivery.objects.count()) == (1, 1)


def test_a_private_address_is_refused_when_sending_and_nothing_is_sent(
    project: Any, receiver: Receiver, local_webhooks: Any
) -> None:
    endpoint_for(project, receiver.url)
    run = make_run(project, status="completed")
    publish(run_id=run.id, type="run.completed", payload={})
    delivery = Delivery.objects.get()
    local_webhooks.WEBHOOKS_ALLOW_LOCAL = False

    assert attempt_now(delivery) == "failed"

    row = Delivery.objects.get(id=delivery.id)
    assert receiver.requests == []
    assert (row.attempts, row.response_code, row.next_attempt_at) == (1, None, None)
    assert row.error.startswith("Refused: The scheme 'http' is not allowed")


def test_a_loopback_https_address_is_refused_when_sending(
    project: Any, local_webhooks: Any
) -> None:
    endpoint_for(project, "https://127.0.0.1:9/hooks")
    run = make_run(project, status="completed")
    publish(run_id=run.id, type="run.completed", payload={})
    delivery = Delivery.objects.get()
    local_webhooks.WEBHOOKS_ALLOW_LOCAL = False

    assert attempt_now(delivery) == "failed"

    assert Delivery.objects.get(id=delivery.id).error == (
        "Refused: 127.0.0.1 is a loopback address, which is not allowed."
    )


def test_redeliver_sends_the_same_id_and_body_again(
    project: Any, receiver: Receiver, local_webhooks: Any
) -> None:
    _, receiver.secret = endpoint_for(project, receiver.url)
    run = make_run(project, status="completed")
    publish(run_id=run.id, type="run.completed", payload={})
    delivery = Delivery.objects.get()
    assert attempt_now(delivery) == "delivered"

    delivery_redeliver(delivery=delivery)
    assert delivery_attempt(delivery_id=delivery.id) == "delivered"

    first, again = receiver.requests
    assert first.headers["webhook-id"] == again.headers["webhook-id"] == delivery.message_id
    assert first.body == again.body
    assert len(receiver.verified()) == 2


def test_an_attempt_whose_worker_died_is_swept_and_sent_again_with_its_id(
    project: Any, receiver: Receiver, local_webhooks: Any
) -> None:
    endpoint_for(project, receiver.url)
    run = make_run(project, status="completed")
    publish(run_id=run.id, type="run.completed", payload={})
    delivery = Delivery.objects.get()
    # An attempt was claimed by a worker that then died (its lease ran out).
    Delivery.objects.filter(id=delivery.id).update(
        status="sending", attempts=1, lease_until=timezone.now() - timedelta(seconds=1)
    )
    assert delivery_attempt(delivery_id=delivery.id) is None  # held: not this caller's

    swept = deliveries_sweep()
    sent = delivery_attempt(delivery_id=delivery.id)

    assert swept == {"reclaimed": 1, "queued": 1}
    assert sent == "delivered"
    assert receiver.ids() == [delivery.message_id]
    assert Delivery.objects.get(id=delivery.id).attempts == 2


def test_the_sweeper_queues_a_due_delivery_whose_message_was_lost(
    project: Any, receiver: Receiver, local_webhooks: Any
) -> None:
    endpoint_for(project, receiver.url)
    run = make_run(project, status="completed")
    publish(run_id=run.id, type="run.completed", payload={})
    delivery = Delivery.objects.get()
    queued_long_ago = timezone.now() - timedelta(minutes=10)
    Delivery.objects.filter(id=delivery.id).update(queued_at=queued_long_ago)

    first = deliveries_sweep()
    second = deliveries_sweep()

    assert (first, second) == ({"reclaimed": 0, "queued": 1}, {"reclaimed": 0, "queued": 0})


def test_a_budget_warning_and_an_approval_wait_say_what_happened(
    project: Any, receiver: Receiver, local_webhooks: Any
) -> None:
    endpoint_for(project, receiver.url, ["run.budget_warning", "run.awaiting_approval"])
    run = make_run(project, budget_usd="1.00", cost_usd="0.85")

    publish(
        run_id=run.id, type="budget.warning", payload={"budget_usd": "1.00", "cost_usd": "0.85"}
    )
    Run.objects.filter(id=run.id).update(status="awaiting_approval")
    publish(run_id=run.id, type="run.awaiting_approval", payload={"approve_url": "/x"})
    for delivery in Delivery.objects.order_by("id"):
        attempt_now(delivery)

    warning, waiting = (body_of(seen) for seen in receiver.requests)
    assert warning["type"] == "run.budget_warning"
    assert warning["data"]["budget"] == {"budget_usd": "1.00", "cost_usd": "0.85"}
    assert waiting["type"] == "run.awaiting_approval"
    assert waiting["data"]["run"]["approve_url"].endswith(f"/runs/{run.id}/approve")


def test_a_runs_push_and_pull_request_are_told_with_branch_commit_and_link_only(
    project: Any, receiver: Receiver, local_webhooks: Any
) -> None:
    endpoint_for(project, receiver.url, ["delivery.pushed", "delivery.pull_request"])
    run = make_run(project, status="completed")
    commit = "0123456789abcdef0123456789abcdef01234567"

    publish(
        run_id=run.id,
        type="delivery.pushed",
        payload={
            "branch": "aiflow/run-7",
            "commit": commit,
            "parent": "f" * 40,
            "root_commit": "",
            "created_branch": True,
            "new_commit": True,
        },
    )
    publish(
        run_id=run.id,
        type="delivery.pull_request",
        payload={
            "number": 3,
            "url": "https://forge.example/acme/app/pull/3",
            "state": "open",
            "created": True,
        },
    )
    for delivery in Delivery.objects.order_by("id"):
        attempt_now(delivery)

    pushed, pull = (body_of(seen) for seen in receiver.requests)
    assert pushed["type"] == "delivery.pushed"
    assert pushed["data"]["delivery"] == {
        "branch": "aiflow/run-7",
        "commit": commit,
        "new_commit": True,
    }
    assert pull["type"] == "delivery.pull_request"
    assert pull["data"]["pull_request"] == {
        "number": 3,
        "url": "https://forge.example/acme/app/pull/3",
        "state": "open",
        "created": True,
    }
    assert set(pull["data"]) == {"run", "project", "pull_request"}


def test_a_message_carries_no_secret_no_prompt_and_no_file_or_test_output(
    project: Any, receiver: Receiver, local_webhooks: Any, settings: Any
) -> None:
    endpoint_for(project, receiver.url, ["run.failed"])
    leaked = "def secret_sauce(): return 'sk-live-0123456789abcdefghij'"
    run = make_run(
        project,
        status="failed",
        prompt=f"Build this: {leaked}",
        error_code="max_fix_attempts",
        error=f"Task core still fails after 3 attempt(s): AssertionError: {leaked}",
    )

    publish(run_id=run.id, type="run.failed", payload={"reason": "x", "detail": leaked})
    attempt_now(Delivery.objects.get())

    [seen] = receiver.requests
    text = seen.body.decode()
    assert "secret_sauce" not in text and "sk-live" not in text
    assert settings.SECRET_KEY not in text
    data = json.loads(text)["data"]
    assert set(data) == {"run", "project"}
    assert set(data["run"]) == {
        "id",
        "status",
        "tokens_in",
        "tokens_out",
        "cost_usd",
        "budget_usd",
        "created_at",
        "started_at",
        "finished_at",
        "base_run",
        "forked_from",
        "url",
        "api_url",
        "error_code",
        "reason",
    }
    assert data["run"]["reason"] == "A task kept failing its tests."
