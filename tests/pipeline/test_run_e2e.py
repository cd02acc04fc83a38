"""End to end through a real Celery worker on Redis and the offline model."""

import io
import zipfile
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
    assert (
        detail["rounds"][1]["resolutions"][0]["objection"] == (detail["rounds"][0]["objections"][0])
    )
    assert sorted((t["key"], t["layer"]) for t in detail["tasks"]) == [
        ("cli", 1),
        ("core", 0),
        ("storage", 0),
    ]
    assert {stage: "completed_at" in times for stage, times in detail["stages"].items()} == {
        "design": True,
        "coding": True,
        "integrate": True,
        "finalize": True,
    }
    assert Step.objects.filter(run=run, key="integrate:integrator", status="succeeded").exists()
    assert Artifact.objects.filter(run=run, path="todo_list/cli.py").exists()
    assert Artifact.objects.filter(run=run, path="README.md").exists()
    assert Event.objects.filter(run=run).order_by("-seq").first().type == "run.completed"
    download = api_client.get(f"/projects/{project.id}/download?run={run.id}")
    assert download.status_code == 200
    archive = zipfile.ZipFile(io.BytesIO(b"".join(download.streaming_content)))
    assert sorted(archive.namelist()) == sorted(
        Artifact.objects.filter(run=run).values_list("path", flat=True)
    )
    assert b"def " in archive.read("todo_list/cli.py")


def test_independent_tasks_of_one_layer_run_concurrently(
    celery_worker: Any, api_client: Any, project: Any, no_sandbox: None, slow_model: None
) -> None:
    response = api_client.post(
        f"/projects/{project.id}/generate", {"prompt": PROMPT}, format="json"
    )
    run = wait_for_run(response.json()["run_id"])

    core = Step.objects.get(run=run, key="task:core:coder:1")
    storage = Step.objects.get(run=run, key="task:storage:coder:1")
    cli = Step.objects.get(run=run, key="task:cli:coder:1")
    assert run.status == Run.Status.COMPLETED
    assert max(core.started_at, storage.started_at) < min(core.finished_at, storage.finished_at)
    assert cli.started_at > max(core.finished_at, storage.finished_at)


# The step's and the run's own statements are bound on the server and prepared; behind a
# pooler that cannot keep prepared statements (DB_PREPARE_STATEMENTS off) the same SQL is
# bound on the client.
@pytest.mark.parametrize("prepared", [True, False], ids=["server_binding", "client_binding"])
def test_every_step_of_a_run_is_stored_once_with_its_usage(
    celery_worker: Any,
    api_client: Any,
    project: Any,
    no_sandbox: None,
    settings: Any,
    prepared: bool,
) -> None:
    settings.DB_PREPARE_STATEMENTS = prepared
    response = api_client.post(
        f"/projects/{project.id}/generate", {"prompt": PROMPT}, format="json"
    )
    run = wait_for_run(response.json()["run_id"])

    steps = api_client.get(f"/runs/{run.id}/steps").json()
    model_steps = [s for s in steps if s["role"] != "integrator" or s["model"]]
    assert run.status == Run.Status.COMPLETED
    assert len({s["key"] for s in steps}) == len(steps)
    assert all(s["status"] == "succeeded" for s in steps)
    assert all(s["model"] == "offline" and s["tokens_in"] > 0 for s in model_steps[:5])
    assert run.tokens_in == sum(s["tokens_in"] for s in steps)
    seqs = list(Event.objects.filter(run=run).order_by("seq").values_list("seq", flat=True))
    assert seqs == list(range(1, len(seqs) + 1))


def test_static_review_is_labelled_when_the_sandbox_is_off(
    celery_worker: Any, api_client: Any, project: Any, no_sandbox: None
) -> None:
    response = api_client.post(
        f"/projects/{project.id}/generate", {"prompt": PROMPT}, format="json"
    )
    run = wait_for_run(response.json()["run_id"])

    events = Event.objects.filter(run=run, type="test.result")
    results = [e for e in events if e.payload["task"] is not None]
    completed = Event.objects.filter(run=run, type="step.completed", payload__role="tester")
    testers = [e for e in completed if e.payload["task"] is not None]
    assert sorted(e.payload["task"] for e in results) == ["cli", "core", "storage"]
    assert {e.payload["mode"] for e in results} == {"static review"}
    assert all(e.payload["summary"].startswith("static review") for e in results)
    assert sorted((e.payload["task"], e.payload["mode"]) for e in testers) == [
        (task, "static review") for task in ("cli", "core", "storage")
    ]


def test_the_integration_suite_takes_the_green_report_of_the_tester_that_checked_its_tree(
    celery_worker: Any, api_client: Any, project: Any
) -> None:
    response = api_client.post(
        f"/projects/{project.id}/generate", {"prompt": PROMPT}, format="json"
    )
    run = wait_for_run(response.json()["run_id"], timeout=240)

    # cli depends on core and storage: its tester ran the checks on the merged tree itself.
    suite = Step.objects.get(run=run, key="integrate:suite:1").output
    cli = PlanTask.objects.get(run=run, key="cli").result["verdict"]["report"]
    assert run.status == Run.Status.COMPLETED
    assert (suite["mode"], suite["reused_from"], suite["passed"]) == ("sandbox", "cli", True)
    assert suite["report"] == cli
    assert cli["mode"] == "bubblewrap"


def test_a_failing_first_attempt_is_fixed_by_the_next_coder_attempt(
    celery_worker: Any, api_client: Any, project: Any, script: Any
) -> None:
    script([{"role": "coder", "task": "core", "action": "bug", "times": 1}])

    response = api_client.post(
        f"/projects/{project.id}/generate", {"prompt": PROMPT}, format="json"
    )
    run = wait_for_run(response.json()["run_id"], timeout=240)

    results = Event.objects.filter(run=run, type="test.result", payload__task="core")
    assert run.status == Run.Status.COMPLETED
    assert [(e.payload["attempt"], e.payload["passed"]) for e in results] == [(1, False), (2, True)]
    assert results[0].payload["mode"] == "sandbox"
    assert "summarize" in " ".join(results[0].payload["failures"])
    assert PlanTask.objects.get(run=run, key="core").result["attempt"] == 2
