"""The run endpoints: generate, list, detail, steps, cancel / resume / approve; owner only."""

from typing import Any

import pytest

from pipeline.models import Event, PlanTask, Run, Step
from tests.factories import ProjectFactory

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def run(project: Any) -> Run:
    return Run.objects.create(project=project, created_by=project.owner, prompt="A CLI timer")


def test_generate_answers_202_with_the_run_and_its_events_url(
    api_client: Any, project: Any
) -> None:
    response = api_client.post(
        f"/projects/{project.id}/generate", {"prompt": "A CLI timer"}, format="json"
    )

    run = Run.objects.get(id=response.json()["run_id"])
    assert response.status_code == 202
    assert response.json() == {
        "run_id": run.id,
        "status": "queued",
        "events_url": f"/runs/{run.id}/events",
    }
    assert Event.objects.get(run=run, seq=1).type == "run.started"


def test_generate_accepts_json_sent_as_curl_does_without_a_content_type(
    api_client: Any, project: Any
) -> None:
    response = api_client.generic(
        "POST",
        f"/projects/{project.id}/generate",
        '{"prompt": "A CLI timer"}',
        content_type="application/x-www-form-urlencoded",
    )

    assert response.status_code == 202


def test_generate_stores_the_validated_options(api_client: Any, project: Any) -> None:
    options = {"max_design_rounds": 2, "max_fix_attempts": 1, "budget_usd": 2.5}

    response = api_client.post(
        f"/projects/{project.id}/generate",
        {"prompt": "A CLI timer", "options": options},
        format="json",
    )

    run = Run.objects.get(id=response.json()["run_id"])
    assert run.options["max_design_rounds"] == 2
    assert str(run.budget_usd) == "2.500000"


@pytest.mark.parametrize(
    "options",
    [
        {"max_design_rounds": 0},
        {"max_fix_attempts": 99},
        {"budget_usd": -1},
        {"providers": ["nowhere:model"]},
        {"surprise": True},
    ],
)
def test_generate_refuses_invalid_options(api_client: Any, project: Any, options: dict) -> None:
    response = api_client.post(
        f"/projects/{project.id}/generate",
        {"prompt": "A CLI timer", "options": options},
        format="json",
    )

    assert response.status_code == 400
    assert response.json()["code"] == "invalid_options"


def test_generate_refuses_an_empty_prompt(api_client: Any, project: Any) -> None:
    response = api_client.post(f"/projects/{project.id}/generate", {"prompt": ""}, format="json")

    assert response.status_code == 400


def test_generate_on_another_users_project_is_404(other_client: Any, project: Any) -> None:
    response = other_client.post(
        f"/projects/{project.id}/generate", {"prompt": "A CLI timer"}, format="json"
    )

    assert response.status_code == 404
    assert not Run.objects.exists()


def test_generate_needs_authentication(anon_client: Any, project: Any) -> None:
    response = anon_client.post(
        f"/projects/{project.id}/generate", {"prompt": "A CLI timer"}, format="json"
    )

    assert response.status_code == 401


def test_project_runs_are_listed_newest_first(api_client: Any, project: Any) -> None:
    older = Run.objects.create(project=project, created_by=project.owner, prompt="one")
    newer = Run.objects.create(project=project, created_by=project.owner, prompt="two")

    response = api_client.get(f"/projects/{project.id}/runs")

    assert [r["id"] for r in response.json()] == [newer.id, older.id]


def test_another_users_project_runs_are_404(other_client: Any, project: Any, run: Run) -> None:
    assert other_client.get(f"/projects/{project.id}/runs").status_code == 404


def test_run_detail_shows_rounds_and_tasks_with_layers(api_client: Any, run: Run) -> None:
    Step.objects.create(
        run=run,
        role="architect",
        key="design:1:architect",
        round=1,
        status="succeeded",
        output={"summary": "first", "resolutions": []},
    )
    Step.objects.create(
        run=run,
        role="planner",
        key="design:1:planner",
        round=1,
        status="succeeded",
        output={"approved": False, "objections": ["too vague"]},
    )
    PlanTask.objects.create(run=run, key="a", title="A", layer=0)
    PlanTask.objects.create(run=run, key="b", title="B", depends_on=["a"], layer=1)

    body = api_client.get(f"/runs/{run.id}").json()

    assert body["rounds"] == [
        {
            "round": 1,
            "proposal": "first",
            "resolutions": [],
            "objections": ["too vague"],
            "approved": False,
            "status": "succeeded",
        }
    ]
    assert [(t["key"], t["depends_on"], t["layer"]) for t in body["tasks"]] == [
        ("a", [], 0),
        ("b", ["a"], 1),
    ]
    assert {"status", "error", "tokens_in", "tokens_out", "cost_usd", "stages"} <= set(body)


def test_run_steps_list_role_task_attempt_and_usage(api_client: Any, run: Run) -> None:
    task = PlanTask.objects.create(run=run, key="a", title="A")
    Step.objects.create(
        run=run, role="coder", key="task:a:coder:2", plan_task=task, attempt=2, tokens_in=7
    )

    body = api_client.get(f"/runs/{run.id}/steps").json()

    assert [(s["role"], s["task"], s["attempt"], s["tokens_in"]) for s in body] == [
        ("coder", "a", 2, 7)
    ]


@pytest.mark.parametrize("suffix", ["", "/steps"])
def test_another_users_run_is_404(other_client: Any, run: Run, suffix: str) -> None:
    assert other_client.get(f"/runs/{run.id}{suffix}").status_code == 404


@pytest.mark.parametrize("action", ["cancel", "resume", "approve"])
def test_another_users_run_actions_are_404(other_client: Any, run: Run, action: str) -> None:
    response = other_client.post(f"/runs/{run.id}/{action}")

    run.refresh_from_db()
    assert response.status_code == 404
    assert run.status == Run.Status.QUEUED


def test_cancel_ends_the_run_with_its_final_event(api_client: Any, run: Run) -> None:
    response = api_client.post(f"/runs/{run.id}/cancel")

    run.refresh_from_db()
    assert response.status_code == 202
    assert run.status == Run.Status.CANCELLED
    assert Event.objects.filter(run=run).order_by("-seq").first().type == "run.cancelled"


def test_cancelling_a_finished_run_is_a_conflict(api_client: Any, run: Run) -> None:
    Run.objects.filter(id=run.id).update(status=Run.Status.COMPLETED)

    assert api_client.post(f"/runs/{run.id}/cancel").status_code == 409


def test_resuming_a_healthy_active_run_is_a_conflict(api_client: Any, run: Run) -> None:
    from django.utils import timezone

    Run.objects.filter(id=run.id).update(status=Run.Status.RUNNING, heartbeat_at=timezone.now())

    response = api_client.post(f"/runs/{run.id}/resume")

    assert response.status_code == 409
    assert response.json()["code"] == "not_resumable"


def test_runs_of_other_projects_do_not_leak_into_a_list(api_client: Any, project: Any) -> None:
    elsewhere = ProjectFactory(owner=project.owner)
    Run.objects.create(project=elsewhere, created_by=project.owner, prompt="x")

    assert api_client.get(f"/projects/{project.id}/runs").json() == []
