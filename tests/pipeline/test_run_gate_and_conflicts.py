"""The approval gate, and integration conflicts resolved by consulting architect and planner."""

from typing import Any

import pytest

from pipeline.models import Event, Run, Step
from pipeline.services import run_start
from projects.artifacts import artifact_read
from projects.models import Artifact
from tests.pipeline.conftest import wait_for_run

pytestmark = [pytest.mark.slow, pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

PROMPT = "A budget planner for students"


def test_a_run_requiring_approval_waits_for_it_then_completes(
    celery_worker: Any, api_client: Any, project: Any, no_sandbox: None
) -> None:
    run = run_start(
        project=project, user=project.owner, prompt=PROMPT, options={"require_approval": True}
    )
    run = wait_for_run(run.id, lambda r: r.status == Run.Status.AWAITING_APPROVAL)
    assert not Step.objects.filter(run=run, role="coder").exists()
    assert Event.objects.filter(run=run).order_by("-seq").first().type == "run.awaiting_approval"

    response = api_client.post(f"/runs/{run.id}/approve")
    run = wait_for_run(run.id)

    assert response.status_code == 202
    assert run.status == Run.Status.COMPLETED
    assert run.approved_at is not None


def test_approving_a_run_that_is_not_waiting_is_a_conflict(
    api_client: Any, project: Any, transactional_db: Any
) -> None:
    run = Run.objects.create(project=project, created_by=project.owner, prompt=PROMPT)

    response = api_client.post(f"/runs/{run.id}/approve")

    assert response.status_code == 409
    assert response.json()["code"] == "not_awaiting_approval"


def test_two_tasks_writing_one_path_are_resolved_by_architect_and_planner(
    celery_worker: Any, project: Any, script: Any, no_sandbox: None
) -> None:
    script([{"role": "coder", "task": "storage", "action": "conflict", "times": 1}])

    run = run_start(project=project, user=project.owner, prompt=PROMPT)
    run = wait_for_run(run.id)

    core = Artifact.objects.get(run=run, path="budget_planner/core.py")
    conflicts = Event.objects.get(run=run, type="integration.conflicts")
    assert run.status == Run.Status.COMPLETED
    assert {c["path"] for c in conflicts.payload["conflicts"]} == {"budget_planner/core.py"}
    assert set(
        Step.objects.filter(run=run, key__startswith="integrate:consult:").values_list(
            "key", "role"
        )
    ) == {
        ("integrate:consult:1:architect", "architect"),
        ("integrate:consult:1:planner", "planner"),
    }
    assert b"def summarize" in artifact_read(artifact=core)


def test_a_module_missing_a_designed_interface_is_completed_through_a_consult(
    celery_worker: Any, project: Any, script: Any, no_sandbox: None
) -> None:
    script([{"role": "coder", "task": "storage", "action": "mismatch", "times": 1}])

    run = run_start(project=project, user=project.owner, prompt=PROMPT)
    run = wait_for_run(run.id)

    storage = Artifact.objects.get(run=run, path="budget_planner/storage.py")
    conflicts = Event.objects.get(run=run, type="integration.conflicts")
    assert run.status == Run.Status.COMPLETED
    assert conflicts.payload["conflicts"] == [
        {"type": "interface", "path": "budget_planner/storage.py", "name": "load_items"}
    ]
    assert b"def load_items" in artifact_read(artifact=storage)
