"""publish(): gap-free per-run sequence, and a push to the Channels group on commit only."""

import asyncio
import threading
import uuid
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import connection, transaction

from pipeline.events import event_serialize, publish, publish_many, run_group_name
from pipeline.fanout import BATCH_MESSAGE_TYPE
from pipeline.models import Event, Run

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def run(project: Any) -> Run:
    return Run.objects.create(project=project, created_by=project.owner, prompt="p")


@pytest.fixture
def listener(run: Run) -> Any:
    """A channel subscribed to the run's group; ``receive(timeout)`` returns a message or None."""
    layer = get_channel_layer()
    # A plain (not process-specific) channel: each receive may run on its own event loop.
    channel = f"test.listener.{uuid.uuid4().hex}"
    async_to_sync(layer.group_add)(run_group_name(run.pk), channel)

    async def _receive(timeout: float) -> Any:
        try:
            return await asyncio.wait_for(layer.receive(channel), timeout)
        except TimeoutError:
            return None

    return lambda timeout=10.0: async_to_sync(_receive)(timeout)


def test_publish_numbers_a_runs_events_from_one(run: Run) -> None:
    events = [publish(run_id=run.pk, type=f"t{n}") for n in range(3)]

    assert [e.seq for e in events] == [1, 2, 3]


def test_concurrent_publishers_get_gap_free_unique_sequence_numbers(run: Run) -> None:
    def publish_many() -> None:
        for _ in range(10):
            publish(run_id=run.pk, type="step.completed")
        connection.close()

    threads = [threading.Thread(target=publish_many) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    seqs = list(Event.objects.filter(run=run).values_list("seq", flat=True))
    assert seqs == list(range(1, 41))


def test_publish_pushes_the_event_to_the_runs_group(run: Run, listener: Any) -> None:
    event = publish(run_id=run.pk, type="stage.started", payload={"stage": "design"})

    message = listener()

    assert message == {"type": "run.event", "event": event_serialize(event)}


def test_events_stored_together_are_pushed_as_one_batch_in_order(run: Run, listener: Any) -> None:
    events = publish_many(run_id=run.pk, events=[("step.completed", {}), ("file.written", {})])

    message = listener()

    assert message == {
        "type": BATCH_MESSAGE_TYPE,
        "messages": [{"type": "run.event", "event": event_serialize(e)} for e in events],
    }


def test_publish_inside_a_transaction_pushes_only_after_commit(run: Run, listener: Any) -> None:
    with transaction.atomic():
        publish(run_id=run.pk, type="step.started")
        before_commit = listener(0.3)

    assert (before_commit, listener()["event"]["seq"]) == (None, 1)


def test_a_rolled_back_event_is_never_pushed(run: Run, listener: Any) -> None:
    with pytest.raises(RuntimeError), transaction.atomic():
        publish(run_id=run.pk, type="step.started")
        raise RuntimeError("boom")

    assert (listener(0.3), Event.objects.filter(run=run).count()) == (None, 0)
