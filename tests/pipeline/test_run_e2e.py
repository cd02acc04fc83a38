"""End to end through a real Celery worker on Redis and the offline model."""

from typing import Any

import pytest

from pipeline.models import Event, PlanTask, Run, Step
from projects.models import Artifact
from tests.pipeline.conftest import wait_for_run

pytestmark = [pytest.mark.slow, pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

PROMPT = "A todo list manager with tags"


@pytest.fixture
def slow_model(settings: Any) -> None:
    # Each model call takes a moment, so parallel steps visibly overlap.
    settings.OFFLINE_LATENCY_MS = 400


def test_generate_runs_design_rounds_layers_integration_and_finalize(
    celery_worker: Any, api_client: Any, project: Any, script: Any, slow_model: None
) -> None:
    script([{"role": "planner", "kind": "plan_review", "action": "object", "times": 1}])

    response = api_client.post(
        f"/projects/{project.id}/generate", {"prompt": PROMPT}, format="json"
    )

    assert response.status_code == 202
    run = wait_for_run(response.json()["run_id"], timeout=240)
    assert (run.status, run.error) == (Run.Status.COMPLETED, "")
    detail = api_client.get(f"/runs/{run.id}").json()
    assert [r["approved"] for r in detail["rounds"]] == [False, True]
    assert detail["rounds"][1]["resolutions"][0]["objection"] == (
        detail["rounds"][0]["objections"][0]
    )
    assert sorted((t["key"], t["layer"]) for t in detail["tasks"]) == [
        ("cli", 1),
        ("core", 0),
        ("storage", 0),
    ]
    assert Artifact.objects.filter(run=run, path="todo_list/cli.py").exists()
    assert Event.objects.filter(run=run).order_by("-seq").first().type == "run.completed"

