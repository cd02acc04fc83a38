"""Deleting a project (or a run) with a run still moving cancels the run first, exactly as
``POST /runs/{id}/cancel`` does: its open streams hear ``run.cancelled`` and its queued tasks
are revoked, so no worker goes on paying for its calls."""

import asyncio
import uuid
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from celery.worker import state as worker_state
from channels.layers import get_channel_layer
from django.utils import timezone

from pipeline import canvas
from pipeline.events import run_group_name
from pipeline.flow import Next
from pipeline.models import Run, Step
from tests.pipeline.conftest import wait_until

pytestmark = pytest.mark.django_db(transaction=True)


def _listen(run_id: int) -> Any:
    """A channel subscribed to the run's group; the call returns its next message or None."""
    layer = get_channel_layer()
    channel = f"test.listener.{uuid.uuid4().hex}"
    async_to_sync(layer.group_add)(run_group_name(run_id), channel)

    async def receive(timeout: float) -> Any:
        try:
            return await asyncio.wait_for(layer.receive(channel), timeout)
        except TimeoutError:
            return None

    return lambda timeout=10.0: async_to_sync(receive)(timeout)


def _queued_run(project: Any) -> tuple[Run, set[str]]:
    """A running run whose next tasks are queued (their ids remembered for a cancel)."""
    run = Run.objects.create(
        project=project,
        created_by=project.owner,
        prompt="A stopwatch",
        status=Run.Status.RUNNING,
        heartbeat_at=timezone.now(),
    )
    Step.objects.create(run=run, role="planner", key="design:1:planner", status="pending")
    sig = canvas.canvas_for(run.pk, Next.design(1))
    sig.freeze()
    canvas.canvas_remember(run_id=run.pk, sig=sig)
    return run, set(canvas._task_ids(sig))


def test_deleting_a_project_cancels_its_active_run_first_and_revokes_its_tasks(
    api_client, project, celery_worker
):
    run, task_ids = _queued_run(project)
    listener = _listen(run.pk)

    assert api_client.delete(f"/projects/{project.pk}").status_code == 204

    message = listener() or {"event": {}}
    assert (message["event"].get("type"), message["event"].get("payload")) == (
        "run.cancelled",
        {"reason": "deleted"},
    )
    assert wait_until(lambda: task_ids <= set(worker_state.revoked))
    assert canvas.canvas_revoke(run_id=run.pk) == 0  # the cancel took the queued ids
    assert not Run.objects.filter(pk=run.pk).exists()


def test_deleting_a_finished_run_sends_nothing(project):
    run = Run.objects.create(
        project=project, created_by=project.owner, prompt="done", status=Run.Status.COMPLETED
    )
    listener = _listen(run.pk)

    Run.objects.filter(pk=run.pk).delete()

    assert listener(0.5) is None
