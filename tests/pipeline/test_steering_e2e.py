"""Steering on the real stack (a real Celery worker, the offline model, a labelled test
double): an edited plan is what runs after approval, and a fork goes on with the edit; a
paused run lets its steps in flight finish and starts nothing until resumed; a message to a
task reaches the prompt of that task's next coder attempt."""

import time
from collections import Counter
from typing import Any

import pytest

from pipeline.models import Event, PlanTask, Run, Step
from pipeline.services import run_start
from projects.models import Artifact
from providers.offline.answers import calls_for, latency_set, prompt_for
from tests.pipeline.conftest import wait_for_run, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

PROMPT = "A budget planner for students"
PKG = "budget_planner"
REPORT = {
    "key": "report",
    "title": "A monthly report",
    "description": "Sum the expenses per month.",
    "files": [f"{PKG}/report.py", "tests/test_report.py"],
    "depends_on": ["core"],
}


@pytest.fixture(autouse=True)
def _media(tmp_path: Any, settings: Any) -> None:
    settings.MEDIA_ROOT = str(tmp_path / "media")


def gated_run(project: Any) -> Run:
    run = run_start(
        project=project, user=project.owner, prompt=PROMPT, options={"require_approval": True}
    )
    return wait_for_run(run.id, lambda r: r.status == Run.Status.AWAITING_APPROVAL)


def plan_of(run: Run) -> list[dict[str, Any]]:
    return [
        {
            "key": t.key,
            "title": t.title,
            "description": t.spec,
            "files": t.files,
            "depends_on": t.depends_on,
        }
        for t in PlanTask.objects.filter(run=run).order_by("layer", "id")
    ]


def edit_without_cli(client: Any, run: Run) -> None:
    """The owner drops the cli task and adds a report task that depends on core."""
    tasks = [task for task in plan_of(run) if task["key"] != "cli"] + [REPORT]
    response = client.patch(f"/runs/{run.id}/plan", {"tasks": tasks}, format="json")
    assert response.status_code == 200, response.json()


def coders(run: Run) -> set[str]:
    return set(Step.objects.filter(run=run, role="coder").values_list("key", flat=True))


def test_an_approved_edited_plan_runs_no_coder_for_a_removed_task(
    celery_worker: Any, api_client: Any, project: Any, no_sandbox: None
) -> None:
    run = gated_run(project)
    edit_without_cli(api_client, run)

    api_client.post(f"/runs/{run.id}/approve")
    run = wait_for_run(run.id, timeout=240)

    paths = set(Artifact.objects.filter(run=run).values_list("path", flat=True))
    assert (run.status, run.error) == (Run.Status.COMPLETED, "")
    assert coders(run) == {"task:core:coder:1", "task:storage:coder:1", "task:report:coder:1"}
    assert not Step.objects.filter(run=run, key__contains=":cli:").exists()
    assert f"{PKG}/report.py" in paths
    assert f"{PKG}/cli.py" not in paths
    assert not Event.objects.filter(run=run, type="integration.conflicts").exists()
    assert PlanTask.objects.get(run=run, key="report").layer == 1


def test_a_fork_from_orchestrate_of_an_edited_run_goes_on_with_the_edit(
    celery_worker: Any, api_client: Any, project: Any, no_sandbox: None
) -> None:
    source = gated_run(project)
    edit_without_cli(api_client, source)
    api_client.post(f"/runs/{source.id}/approve")
    source = wait_for_run(source.id, timeout=240)

    response = api_client.post(f"/runs/{source.id}/fork", {"from": "orchestrate"}, format="json")
    fork = wait_for_run(response.json()["run_id"], timeout=240)

    assert (fork.status, fork.error) == (Run.Status.COMPLETED, "")
    assert sorted(PlanTask.objects.filter(run=fork).values_list("key", flat=True)) == [
        "core",
        "report",
        "storage",
    ]
    assert coders(fork) == {"task:core:coder:1", "task:storage:coder:1", "task:report:coder:1"}
    assert fork.design["edits"] == source.design["edits"]


def test_a_paused_run_lets_its_steps_in_flight_finish_and_starts_nothing_until_resumed(
    celery_worker: Any, api_client: Any, project: Any, no_sandbox: None
) -> None:
    latency_set(roles={"coder": 3000}, default_ms=50)
    run = run_start(project=project, user=project.owner, prompt=PROMPT)
    wait_until(
        lambda: Step.objects.filter(run=run, role="coder", status=Step.Status.RUNNING).count() == 2,
        timeout=120,
    )

    assert api_client.post(f"/runs/{run.id}/pause").status_code == 202
    in_flight = set(Event.objects.get(run=run, type="run.paused").payload["finishing"])
    wait_until(lambda: not Step.objects.filter(run=run, status=Step.Status.RUNNING).exists())
    finished = dict(Step.objects.filter(run=run).values_list("key", "status"))
    # Nothing new starts for 10 s: no step row, no step running, the run still paused.
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        assert dict(Step.objects.filter(run=run).values_list("key", "status")) == finished
        assert Run.objects.get(id=run.id).status == Run.Status.PAUSED
        time.sleep(0.5)

    assert api_client.post(f"/runs/{run.id}/resume").status_code == 202
    run = wait_for_run(run.id, timeout=240)

    started = Counter(e.payload["key"] for e in Event.objects.filter(run=run, type="step.started"))
    assert in_flight == {"task:core:coder:1", "task:storage:coder:1"}
    assert {key: finished[key] for key in in_flight} == dict.fromkeys(in_flight, "succeeded")
    assert (run.status, run.error) == (Run.Status.COMPLETED, "")
    assert set(started.values()) == {1}
    assert set(calls_for(run.id).values()) == {1}


def test_a_message_to_a_task_reaches_the_prompt_of_its_next_coder_attempt(
    celery_worker: Any, api_client: Any, project: Any, script: Any, no_sandbox: None
) -> None:
    # core's first attempt plants a bug its tester catches: a second attempt follows.
    script([{"role": "coder", "task": "core", "action": "bug", "times": 1}])
    latency_set(tasks={"core": 2500}, default_ms=50)
    run = run_start(project=project, user=project.owner, prompt=PROMPT)
    wait_until(
        lambda: Step.objects.filter(
            run=run, key="task:core:coder:1", status=Step.Status.RUNNING
        ).exists(),
        timeout=120,
    )

    response = api_client.post(
        f"/runs/{run.id}/tasks/core/messages",
        {"text": "Fold case when you count the items."},
        format="json",
    )
    run = wait_for_run(run.id, timeout=240)

    first, second = (Step.objects.get(run=run, key=f"task:core:coder:{n}") for n in (1, 2))
    assert response.status_code == 201
    assert run.status == Run.Status.COMPLETED
    assert "messages" not in first.input
    assert "Fold case when you count the items." not in prompt_for(run.id, first.key)
    assert second.input["messages"] == ["Fold case when you count the items."]
    assert "Fold case when you count the items." in prompt_for(run.id, second.key)
    body = api_client.get(f"/runs/{run.id}").json()
    assert [(m["task"], m["attempt"]) for m in body["messages"]] == [("core", 2)]
