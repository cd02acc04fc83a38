"""No layer barrier: a task starts when its own dependencies are green, and is queued once."""

import threading
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
from django.db import connections
from django.utils import timezone

from pipeline.models import PlanTask, Run, Step
from pipeline.services import run_start
from pipeline.services.stages import plan_claim_integration, plan_claim_ready
from providers.offline import answers
from tests.pipeline.conftest import wait_for_run

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def shape() -> Iterator[None]:
    yield
    answers.dag_clear()
    answers.latency_clear()


@pytest.fixture
def run(project: Any) -> Run:
    return Run.objects.create(
        project=project, created_by=project.owner, prompt="p", status=Run.Status.RUNNING
    )


def plan(run: Run, **tasks: list[str]) -> dict[str, PlanTask]:
    return {
        key: PlanTask.objects.create(run=run, key=key, title=key, depends_on=deps)
        for key, deps in tasks.items()
    }


def at_once(count: int, work: Any) -> list[Any]:
    """Run ``work(i)`` in ``count`` threads released together; their results."""
    gate = threading.Barrier(count)
    results: list[Any] = [None] * count

    def body(index: int) -> None:
        try:
            gate.wait()
            results[index] = work(index)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=body, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


@pytest.mark.slow
@pytest.mark.e2e
def test_a_task_starts_as_soon_as_its_own_dependency_finished_not_its_layer(
    celery_worker: Any, project: Any, no_sandbox: None, shape: None
) -> None:
    answers.dag_set(
        [
            {"key": "slow", "depends_on": []},
            {"key": "fast", "depends_on": []},
            {"key": "next", "depends_on": ["fast"]},
            {"key": "last", "depends_on": ["slow", "next"]},
        ]
    )
    answers.latency_set(tasks={"slow": 2500}, default_ms=50)

    run = run_start(project=project, user=project.owner, prompt="A layered tool")
    run = wait_for_run(run.id, timeout=180)

    steps = {s.key: s for s in Step.objects.filter(run=run)}
    layers = dict(PlanTask.objects.filter(run=run).values_list("key", "layer"))
    assert run.status == Run.Status.COMPLETED
    assert (layers["fast"], layers["slow"], layers["next"]) == (0, 0, 1)
    assert steps["task:next:coder:1"].started_at < steps["task:slow:coder:1"].finished_at
    assert steps["task:next:tester:1"].finished_at < steps["task:slow:tester:1"].finished_at
    assert steps["task:last:coder:1"].started_at > steps["task:slow:tester:1"].finished_at
    assert steps["task:last:coder:1"].started_at > steps["task:next:tester:1"].finished_at


def test_of_many_workers_claiming_at_once_exactly_one_gets_a_ready_task(run: Run) -> None:
    tasks = plan(run, a=[], b=[], c=["a", "b"])
    PlanTask.objects.filter(key__in=["a", "b"]).update(status=PlanTask.Status.SUCCEEDED)

    claimed = at_once(8, lambda _: plan_claim_ready(run_id=run.id))

    assert Counter(task_id for ids in claimed for task_id in ids) == {tasks["c"].id: 1}


def test_when_the_last_two_dependencies_finish_together_the_task_is_claimed_once(
    run: Run,
) -> None:
    tasks = plan(run, a=[], b=[], c=["a", "b"])
    PlanTask.objects.filter(key__in=["a", "b"]).update(dispatched_at=timezone.now())

    def finish(index: int) -> list[int]:
        key = "ab"[index]
        PlanTask.objects.filter(run=run, key=key).update(status=PlanTask.Status.SUCCEEDED)
        return plan_claim_ready(run_id=run.id)

    for _ in range(5):  # the two finish in either order, or truly together
        PlanTask.objects.filter(run=run).update(status=PlanTask.Status.PENDING)
        PlanTask.objects.filter(key="c").update(dispatched_at=None)
        claimed = at_once(2, finish)
        assert sorted(claimed, key=len) == [[], [tasks["c"].id]]


def test_a_task_whose_dependency_is_not_green_is_not_claimed(run: Run) -> None:
    plan(run, a=[], b=["a"])
    PlanTask.objects.filter(key="a").update(dispatched_at=timezone.now())

    assert plan_claim_ready(run_id=run.id) == []


def test_integration_is_claimed_once_and_only_when_every_task_is_green(run: Run) -> None:
    plan(run, a=[], b=["a"])
    PlanTask.objects.filter(key="a").update(status=PlanTask.Status.SUCCEEDED)
    assert plan_claim_integration(run_id=run.id) is False

    PlanTask.objects.filter(key="b").update(status=PlanTask.Status.SUCCEEDED)
    claims = at_once(6, lambda _: plan_claim_integration(run_id=run.id))

    assert sorted(claims) == [False] * 5 + [True]
