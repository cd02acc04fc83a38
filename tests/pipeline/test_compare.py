"""GET /projects/{id}/compare: runs side by side and the file diff between two; owner only."""

from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.utils import timezone

from pipeline.models import PlanTask, Run, Step
from projects.artifacts import artifact_store_tree
from tests.factories import ProjectFactory

pytestmark = pytest.mark.django_db

CODE = "def parse(text):\n\n    return text.split()\n"  # 2 non-blank lines, 3 in all
TESTS = "from pkg.core import parse\n\n\ndef test_parse():\n    assert parse('a b')\n"


@pytest.fixture(autouse=True)
def _media(tmp_path: Any, settings: Any) -> None:
    settings.MEDIA_ROOT = str(tmp_path / "media")


def step(run: Run, key: str, role: str, **fields: Any) -> Step:
    fields.setdefault("status", Step.Status.SUCCEEDED)
    return Step.objects.create(run=run, key=key, role=role, **fields)


def suite(run: Run, number: int, summary: str, *, passed: bool) -> Step:
    report = {"passed": passed, "mode": "sandbox", "summary": summary, "failures": []}
    return step(
        run,
        f"integrate:suite:{number}",
        "tester",
        attempt=number,
        output={"mode": "sandbox", "report": report, "passed": passed},
    )


@pytest.fixture
def first(project: Any) -> Run:
    """Two design rounds, two fix attempts, a red then a green integration suite, four files."""
    created = timezone.now() - timedelta(minutes=5)
    run = Run.objects.create(
        project=project,
        created_by=project.owner,
        prompt="A parser",
        status=Run.Status.COMPLETED,
        tokens_in=1200,
        tokens_out=340,
        cost_usd=Decimal("0.012500"),
    )
    Run.objects.filter(id=run.id).update(
        created_at=created, finished_at=created + timedelta(seconds=90.5)
    )
    run.refresh_from_db()
    step(run, "design:1:architect", "architect", round=1)
    step(run, "design:1:planner", "planner", round=1)
    step(run, "design:2:architect", "architect", round=2, reused=True)
    step(run, "design:2:planner", "planner", round=2)
    task = PlanTask.objects.create(run=run, key="core", title="Core", status="succeeded")
    PlanTask.objects.create(run=run, key="cli", title="CLI", status="failed")
    step(run, "task:core:coder:1", "coder", plan_task=task)
    step(run, "task:core:tester:1", "tester", plan_task=task)
    step(run, "task:core:coder:2", "coder", plan_task=task, attempt=2)
    step(run, "task:core:coder:3", "coder", plan_task=task, attempt=3)
    suite(run, 1, "3 passed, 1 failed, 0 errors; 0 lint and 0 security findings", passed=False)
    suite(run, 2, "4 passed, 0 failed, 0 errors; 2 lint and 0 security findings", passed=True)
    artifact_store_tree(
        run=run,
        files={
            "pkg/core.py": CODE,
            "tests/test_core.py": TESTS,
            "README.md": "# pkg\n",
            "logo.png": b"\x89PNG\x00\x01",
        },
    )
    return run


@pytest.fixture
def second(project: Any, first: Run) -> Run:
    """A follow-up of ``first`` that changes the code and adds a module; static review only."""
    run = Run.objects.create(
        project=project,
        created_by=project.owner,
        prompt="Add a report",
        status=Run.Status.COMPLETED,
        base_run=first,
    )
    step(run, "design:1:planner", "planner", round=1)
    step(
        run,
        "integrate:suite:1",
        "tester",
        output={"mode": "static review", "report": None, "passed": True},
    )
    artifact_store_tree(
        run=run,
        files={
            "pkg/core.py": CODE + "\n\ndef top():\n    return 1\n",
            "pkg/report.py": "def render():\n    return ''\n",
            "tests/test_core.py": TESTS,
            "README.md": "# pkg\n",
            "logo.png": b"\x89PNG\x00\x01",
        },
    )
    return run


def compare(client: Any, project: Any, query: str) -> Any:
    return client.get(f"/projects/{project.id}/compare?{query}")


def test_compare_shows_each_runs_figures(
    api_client: Any, project: Any, first: Run, second: Run
) -> None:
    response = compare(api_client, project, f"runs={first.id},{second.id}")

    figures = response.json()["runs"][0]
    assert response.status_code == 200
    assert {key: figures[key] for key in figures if key not in ("created_at", "finished_at")} == {
        "id": first.id,
        "status": "completed",
        "error_code": "",
        "prompt": "A parser",
        "base_run": None,
        "forked_from": None,
        "wall_seconds": 90.5,
        "tokens_in": 1200,
        "tokens_out": 340,
        "cost_usd": "0.012500",
        "steps": 10,
        "steps_reused": 1,
        "design_rounds": 2,
        "fix_attempts": 2,
        "tasks": {"total": 2, "succeeded": 1, "failed": 1},
        "tests": {
            "suite": "integration",
            "mode": "sandbox",
            "passed": 4,
            "failed": 0,
            "errors": 0,
        },
        "lines": {"files": 4, "code": 2, "tests": 3, "total": 9},
    }


def test_runs_come_back_in_the_order_asked(
    api_client: Any, project: Any, first: Run, second: Run
) -> None:
    response = compare(api_client, project, f"runs={second.id},{first.id}")

    assert [run["id"] for run in response.json()["runs"]] == [second.id, first.id]


def test_a_run_whose_tests_did_not_run_in_the_sandbox_has_no_counts(
    api_client: Any, project: Any, first: Run, second: Run
) -> None:
    figures = compare(api_client, project, f"runs={first.id},{second.id}").json()["runs"][1]

    assert (figures["base_run"], figures["tests"]) == (
        first.id,
        {
            "suite": "integration",
            "mode": "static review",
            "passed": None,
            "failed": None,
            "errors": None,
        },
    )


def test_the_diff_between_the_first_two_shows_the_changed_and_added_files(
    api_client: Any, project: Any, first: Run, second: Run
) -> None:
    diff = compare(api_client, project, f"runs={first.id},{second.id}").json()["diff"]

    assert (diff["from_run"], diff["to_run"]) == (first.id, second.id)
    assert (diff["added"], diff["changed"], diff["removed"], diff["unchanged"]) == (
        ["pkg/report.py"],
        ["pkg/core.py"],
        [],
        3,
    )
    assert "+def top():" in diff["diffs"]["pkg/core.py"]


def test_diff_picks_any_two_of_the_compared_runs_in_the_order_given(
    api_client: Any, project: Any, first: Run, second: Run
) -> None:
    third = Run.objects.create(project=project, prompt="running", status=Run.Status.RUNNING)

    diff = compare(
        api_client, project, f"runs={first.id},{third.id},{second.id}&diff={second.id},{first.id}"
    ).json()["diff"]

    assert (diff["from_run"], diff["to_run"], diff["removed"]) == (
        second.id,
        first.id,
        ["pkg/report.py"],
    )


def test_a_run_without_files_has_no_lines_and_no_diff(
    api_client: Any, project: Any, first: Run
) -> None:
    running = Run.objects.create(project=project, prompt="running", status=Run.Status.RUNNING)

    body = compare(api_client, project, f"runs={first.id},{running.id}").json()

    assert (body["diff"], body["runs"][1]["lines"], body["runs"][1]["wall_seconds"]) == (
        None,
        None,
        None,
    )
    assert body["runs"][1]["tests"]["suite"] is None


def test_compare_on_another_users_project_is_404(
    other_client: Any, project: Any, first: Run, second: Run
) -> None:
    response = compare(other_client, project, f"runs={first.id},{second.id}")

    assert (response.status_code, response.json()["code"]) == (404, "not_found")


def test_another_users_run_in_the_list_is_404(
    api_client: Any, project: Any, first: Run, other_user: Any
) -> None:
    theirs = Run.objects.create(project=ProjectFactory(owner=other_user), prompt="x")

    response = compare(api_client, project, f"runs={first.id},{theirs.id}")

    assert (response.status_code, response.json()["code"]) == (404, "not_found")


def test_a_run_of_the_users_other_project_is_404(
    api_client: Any, project: Any, first: Run, user: Any
) -> None:
    elsewhere = Run.objects.create(project=ProjectFactory(owner=user), prompt="x")

    response = compare(api_client, project, f"runs={first.id},{elsewhere.id}")

    assert response.status_code == 404


@pytest.mark.parametrize(
    "query",
    ["", "runs=", "runs={a}", "runs={a},{a}", "runs={a},x", "runs={a},{b},{a},{b}"],
)
def test_a_bad_runs_parameter_is_400(
    api_client: Any, project: Any, first: Run, second: Run, query: str
) -> None:
    response = compare(api_client, project, query.format(a=first.id, b=second.id))

    assert (response.status_code, response.json()["code"]) == (400, "invalid")


@pytest.mark.parametrize("diff", ["{a}", "{a},999999", "{a},{b},{a}"])
def test_a_diff_naming_anything_but_two_compared_runs_is_400(
    api_client: Any, project: Any, first: Run, second: Run, diff: str
) -> None:
    query = f"runs={first.id},{second.id}&diff=" + diff.format(a=first.id, b=second.id)

    assert compare(api_client, project, query).status_code == 400


def test_compare_needs_authentication(anon_client: Any, project: Any) -> None:
    assert compare(anon_client, project, "runs=1,2").status_code == 401


def test_compare_is_in_the_openapi_schema(api_client: Any) -> None:
    schema = api_client.get("/api/schema/", HTTP_ACCEPT="application/json").json()

    operation = schema["paths"]["/projects/{project_id}/compare"]["get"]
    assert {p["name"] for p in operation["parameters"]} >= {"project_id", "runs", "diff"}
    assert "200" in operation["responses"]
