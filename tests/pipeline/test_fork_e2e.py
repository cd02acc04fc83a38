"""Forks on the real stack: a real Celery worker, the offline model (a labelled test double),
the tests in the sandbox. A fork reuses its source's steps before the fork point (no model
call, no cost counted again), goes on with its own options, and the source stays as it was."""

from decimal import Decimal
from typing import Any

import pytest

from pipeline.models import Event, Run, Step
from providers.offline.answers import calls_for
from tests.pipeline.conftest import wait_for_run

pytestmark = [pytest.mark.slow, pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

PROMPT = "A shopping list manager"
TASKS = ("cli", "core", "storage")
OTHER_CHAIN = ["offline:offline-b"]


@pytest.fixture(autouse=True)
def _second_offline_label(settings: Any) -> None:
    """The operator allows a second offline label, the chain forks switch to."""
    settings.LLM_ALLOWED_MODELS = ["offline:offline-b"]


@pytest.fixture(autouse=True)
def _media(tmp_path: Any, settings: Any) -> None:
    settings.MEDIA_ROOT = str(tmp_path / "media")


def completed(run_id: int) -> Run:
    run = wait_for_run(run_id, timeout=300)
    assert (run.status, run.error) == (Run.Status.COMPLETED, "")
    return run


def snapshot(run: Run) -> Any:
    """What a fork must leave alone of its source: the run's figures and every step's."""
    run.refresh_from_db()
    steps = Step.objects.filter(run=run).order_by("id")
    return (
        (run.status, run.tokens_in, run.tokens_out, run.cost_usd, run.finished_at),
        list(steps.values_list("key", "status", "tokens_in", "llm_calls", "model", "output")),
    )


def fork(client: Any, run: Run, point: str, **options: Any) -> Run:
    response = client.post(
        f"/runs/{run.id}/fork", {"from": point, "options": options}, format="json"
    )
    assert response.status_code == 202, response.json()
    assert response.json()["events_url"] == f"/runs/{response.json()['run_id']}/events"
    return completed(response.json()["run_id"])


def test_a_fork_from_coding_with_another_chain_reuses_the_design_and_completes(
    celery_worker: Any, api_client: Any, project: Any
) -> None:
    response = api_client.post(
        f"/projects/{project.id}/generate", {"prompt": PROMPT}, format="json"
    )
    source = completed(response.json()["run_id"])
    before = snapshot(source)
    design_keys = ["design:1:architect", "design:1:planner", "orchestrate"]

    forked = fork(api_client, source, "coding", providers=OTHER_CHAIN)

    steps = list(Step.objects.filter(run=forked).order_by("id"))
    reused = [s for s in steps if s.reused]
    paid = [s for s in steps if not s.reused]
    origins = {s.key: s.id for s in Step.objects.filter(run=source)}
    # The design steps were taken over: copied rows pointing at their origin, no model call.
    assert [(s.key, s.reused_from_id, s.llm_calls) for s in reused] == [
        (key, origins[key], 0) for key in design_keys
    ]
    assert calls_for(forked.id) == {
        **{f"task:{task}:{role}:1": 1 for task in TASKS for role in ("coder", "tester")},
        "integrate:integrator": 1,
    }
    assert {s.model for s in paid if s.llm_calls} == {"offline-b"}
    assert {s.model for s in reused} == {"offline"}
    # Their tokens are on record, but the fork's totals are those of its own steps only.
    assert sum(s.tokens_in for s in reused) > 0
    assert (forked.tokens_in, forked.tokens_out, forked.cost_usd) == (
        sum(s.tokens_in for s in paid),
        sum(s.tokens_out for s in paid),
        sum((s.cost_usd for s in paid), Decimal(0)),
    )
    assert (forked.forked_from_id, forked.fork_point, forked.base_run_id) == (
        source.id,
        "coding",
        None,
    )
    assert forked.options["providers"] == OTHER_CHAIN
    event = Event.objects.get(run=forked, type="run.forked")
    assert [(item["key"], item["reused_from"]) for item in event.payload["reused"]] == [
        (key, origins[key]) for key in design_keys
    ]
    assert snapshot(source) == before

    body = api_client.get(f"/projects/{project.id}/compare?runs={source.id},{forked.id}").json()

    figures = {run["id"]: run for run in body["runs"]}
    forked.refresh_from_db()
    assert [
        (
            figures[run.id]["status"],
            figures[run.id]["tokens_in"],
            figures[run.id]["steps"],
            figures[run.id]["steps_reused"],
            figures[run.id]["forked_from"],
            figures[run.id]["tests"],
        )
        for run in (source, forked)
    ] == [
        (
            "completed",
            run.tokens_in,
            Step.objects.filter(run=run).count(),
            reused_count,
            forked_from,
            {"suite": "integration", "mode": "sandbox", "passed": 5, "failed": 0, "errors": 0},
        )
        for run, reused_count, forked_from in ((source, 0, None), (forked, 3, source.id))
    ]
    # The same design coded by another chain of the same offline double: the same tree.
    assert (body["diff"]["added"], body["diff"]["removed"], body["diff"]["changed"]) == (
        [],
        [],
        [],
    )


def test_a_fork_from_integrate_takes_over_every_task_and_only_integrates_again(
    celery_worker: Any, api_client: Any, project: Any
) -> None:
    response = api_client.post(
        f"/projects/{project.id}/generate", {"prompt": PROMPT}, format="json"
    )
    source = completed(response.json()["run_id"])

    forked = fork(api_client, source, "integrate")

    reused = set(Step.objects.filter(run=forked, reused=True).values_list("key", flat=True))
    source_keys = set(Step.objects.filter(run=source).values_list("key", flat=True))
    assert reused == {key for key in source_keys if not key.startswith("integrate:")}
    assert calls_for(forked.id) == {"integrate:integrator": 1}
    assert Step.objects.get(run=forked, key="integrate:suite:1").reused is False
    assert sorted(forked.tasks.values_list("key", "status")) == [
        (task, "succeeded") for task in TASKS
    ]
