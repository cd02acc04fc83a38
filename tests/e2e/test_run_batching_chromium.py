"""A run page with 30 tasks stays responsive: events are applied in batches.

Events of a 30-task run arrive in one burst (stored with ``publish`` as the pipeline does, from
a thread of their own, and committed together, so they reach the page at once). The page must
end with every node green and every event logged, and must ask the server for its state and
each fragment a fixed number of times, whatever the number of events: it batches them.
"""

import re
import threading
from collections import Counter

import pytest
from django.db import connection, transaction
from django.utils import timezone
from playwright.sync_api import expect

from pipeline.events import publish
from pipeline.models import Event, PlanTask, Run, Step
from tests.e2e.conftest import RUN_WAIT_MS
from tests.factories import DEFAULT_PASSWORD

pytestmark = [pytest.mark.slow, pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

LAYERS, PER_LAYER = 5, 6
# Requests of the state or of one fragment a run page makes for one burst of events: a leading
# and a trailing one per throttle interval, with room for a burst that spans a second interval.
FETCHES_PER_KIND = 3


def _plan(run: Run) -> list[PlanTask]:
    tasks = []
    for layer in range(LAYERS):
        for slot in range(PER_LAYER):
            depends = [f"t{layer - 1}-{s}" for s in range(PER_LAYER)][:2] if layer else []
            tasks.append(
                PlanTask.objects.create(
                    run=run,
                    key=f"t{layer}-{slot}",
                    title=f"Task {slot} of layer {layer}",
                    layer=layer,
                    depends_on=depends,
                )
            )
    return tasks


def _play(run: Run, tasks: list[PlanTask]) -> None:
    """Every task coded and tested, then the run completed: about 160 events, committed (and
    so pushed to the page) together."""
    try:
        with transaction.atomic():
            _publish_all(run, tasks)
    finally:
        connection.close()


def _publish_all(run: Run, tasks: list[PlanTask]) -> None:
    publish(run_id=run.id, type="run.started", payload={})
    for task in tasks:
        for role in ("coder", "tester"):
            step = Step.objects.create(
                run=run,
                role=role,
                key=f"task:{task.key}:{role}:1",
                plan_task=task,
                status="running",
                started_at=timezone.now(),
            )
            ref = {"step_id": step.id, "key": step.key, "role": role, "task": task.key}
            publish(run_id=run.id, type="step.started", payload={**ref, "attempt": 1})
            Step.objects.filter(id=step.id).update(
                status="succeeded", finished_at=timezone.now(), output={"mode": "sandbox"}
            )
            publish(run_id=run.id, type="step.completed", payload={**ref, "cost_usd": "0"})
        PlanTask.objects.filter(id=task.id).update(status="succeeded")
        publish(
            run_id=run.id,
            type="test.result",
            payload={"task": task.key, "attempt": 1, "passed": True, "mode": "sandbox"},
        )
    Run.objects.filter(id=run.id).update(status="completed", finished_at=timezone.now())
    publish(run_id=run.id, type="run.completed", payload={"artifacts": 0})


def test_a_thirty_task_run_is_followed_live_with_batched_updates(web_url, page, user, project):
    page.goto(web_url + "/")
    page.get_by_label("Email").fill(user.email)
    page.get_by_label("Password").fill(DEFAULT_PASSWORD)
    page.get_by_role("button", name="Sign in", exact=True).click()
    page.get_by_role("heading", name="Your projects").wait_for()
    run = Run.objects.create(
        project=project, created_by=user, prompt="Thirty tasks", status="running"
    )
    tasks = _plan(run)
    fetched: list[str] = []
    page.on(
        "request",
        lambda request: (
            fetched.append(request.url)
            if re.search(rf"/app/runs/{run.id}/(state|summary|steps|rounds)$", request.url)
            else None
        ),
    )
    page.goto(f"{web_url}/app/runs/{run.id}")
    nodes = page.get_by_role("button", name=re.compile(r"^Task t\d-\d: "))
    expect(nodes).to_have_count(LAYERS * PER_LAYER)
    page.get_by_role("status").filter(has_text="Live").wait_for()
    assert fetched == []

    player = threading.Thread(target=_play, args=(run, tasks))
    player.start()
    player.join(timeout=RUN_WAIT_MS / 1000)

    page.get_by_role("status").filter(has_text="The run has ended").wait_for(timeout=RUN_WAIT_MS)
    succeeded = page.get_by_role("button", name=re.compile(r"^Task t\d-\d: .*, succeeded,"))
    expect(succeeded).to_have_count(LAYERS * PER_LAYER, timeout=RUN_WAIT_MS)
    events = page.get_by_role("list", name="Events").get_by_role("listitem")
    stored = Event.objects.filter(run=run).count()
    expect(events).to_have_count(stored)
    assert stored > 150
    # Batched: the state and each fragment are asked for at most once per interval (1 s and
    # 1.5 s), a leading and a trailing request for a burst; handled one by one, each event
    # would ask for the summary and the steps. A fixed cap per run, whatever the events:
    kinds = Counter(url.rsplit("/", 1)[1] for url in fetched)
    assert set(kinds) <= {"state", "summary", "steps", "rounds"}, fetched
    assert max(kinds.values()) <= FETCHES_PER_KIND, kinds
