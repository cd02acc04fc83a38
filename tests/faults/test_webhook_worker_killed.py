"""A worker SIGKILLed in the middle of a webhook delivery: nothing is lost, and the duplicate
the receiver gets carries the same webhook-id (at least once, identifiably).

The worker and beat are real ``celery -A config`` processes on the test database and Redis.
A fault point holds the worker right after the receiver answered and before the attempt was
recorded, so the kill lands at that moment every time; then beat and a fresh worker start and
nothing is called by hand: beat's sweep must find the attempt whose lease ran out and send it
again.
"""

from typing import Any

import pytest

from pipeline.events import publish
from pipeline.faults import fault_held, fault_script_set
from tests.faults.conftest import Start, kill
from tests.pipeline.conftest import wait_until
from tests.webhooks.conftest import Receiver, make_run
from webhooks.models import Delivery
from webhooks.services import endpoint_create

pytestmark = [pytest.mark.slow, pytest.mark.faults, pytest.mark.django_db(transaction=True)]

FAST_WEBHOOKS = {
    "WEBHOOKS_ALLOW_LOCAL": "true",
    "WEBHOOKS_TIMEOUT_SECONDS": "1",
    "WEBHOOKS_SWEEP_SECONDS": "0.5",
    "WEBHOOKS_RETRY_BASE_SECONDS": "0.5",
    "WEBHOOKS_RETRY_MAX_DELAY_SECONDS": "1",
}


def worker(start: Start, name: str) -> Any:
    return start(name, "worker", "-Q", "default", "--pool", "threads", "-c", "4", **FAST_WEBHOOKS)


def test_a_worker_killed_mid_delivery_loses_nothing_and_resends_the_same_id(
    project: Any, start: Start, settings: Any
) -> None:
    settings.WEBHOOKS_ALLOW_LOCAL = True
    receiver = Receiver()
    try:
        _, receiver.secret = endpoint_create(
            project=project, url=receiver.url, events=["run.completed"]
        )
        run = make_run(project, status="completed")
        publish(run_id=run.id, type="run.completed", payload={})
        delivery = Delivery.objects.get()
        fault_script_set(
            [{"point": "webhook_sent", "step": f"delivery:{delivery.id}", "seconds": 600}]
        )

        doomed = worker(start, "doomed")
        wait_until(fault_held, timeout=120)
        assert len(receiver.requests) == 1  # the receiver has it; nothing was recorded
        assert Delivery.objects.get(id=delivery.id).status == "sending"
        kill(doomed)
        start("beat", "beat", **FAST_WEBHOOKS)
        worker(start, "rescuer")
        wait_until(
            lambda: Delivery.objects.filter(id=delivery.id, status="delivered").exists(),
            timeout=120,
        )

        row = Delivery.objects.get(id=delivery.id)
        assert fault_held() == [{"point": "webhook_sent", "step": f"delivery:{delivery.id}"}]
        assert (row.status, row.attempts, row.response_code) == ("delivered", 2, 200)
        assert receiver.ids() == [delivery.message_id, delivery.message_id]
        assert [p["type"] for p in receiver.verified()] == ["run.completed", "run.completed"]
    finally:
        receiver.close()
