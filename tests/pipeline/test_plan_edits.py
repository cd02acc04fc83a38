"""Editing the plan at the approval gate: PATCH /runs/{id}/plan, its rules and its record."""

from typing import Any

import pytest

from pipeline.models import Event, PlanTask, Run, Step

pytestmark = pytest.mark.django_db(transaction=True)

DESIGN = {
    "approved_round": 1,
    "summary": "A CLI timer.",
    "interfaces": [
        {"path": "timer/core.py", "name": "tick", "signature": "def tick() -> int"},
        {"path": "timer/cli.py", "name": "main", "signature": "def main() -> int"},
    ],
}
PLAN = [
    {"key": "core", "title": "Implement core", "description": "The clock.",
     "files": ["timer/core.py", "tests/test_core.py"], "depends_on": []},
    {"key": "storage", "title": "Implement storage", "description": "Save laps.",
     "files": ["timer/storage.py", "tests/test_storage.py"], "depends_on": []},
    {"key": "cli", "title": "Implement cli", "description": "The command line.",
     "files": ["timer/cli.py", "tests/test_cli.py"], "depends_on": ["core", "storage"]},
]  # fmt: skip


@pytest.fixture
def gated(project: Any) -> Run:
    """A run waiting at the approval gate with the planner's three tasks."""
    run = Run.objects.create(
        project=project,
        created_by=project.owner,
        prompt="A CLI timer",
        status=Run.Status.AWAITING_APPROVAL,
        design={**DESIGN, "plan": [{**t, "spec": t["description"]} for t in PLAN]},
    )
    for layer, task in zip((0, 0, 1), PLAN, strict=True):
        PlanTask.objects.create(
            run=run,
            key=task["key"],
            title=task["title"],
            spec=task["description"],
            files=task["files"],
            depends_on=task["depends_on"],
            layer=layer,
        )
    return run


def edited(*changes: tuple[int, dict[str, Any]], drop: tuple[str, ...] = ()) -> list[dict]:
    """The plan with task ``i`` updated by each ``(i, fields)``, and the ``drop`` keys removed."""
    tasks = [dict(task) for task in PLAN]
    for index, fields in changes:
        tasks[index].update(fields)
    return [task for task in tasks if task["key"] not in drop]


def patch(client: Any, run: Run, tasks: Any) -> Any:
    return client.patch(f"/runs/{run.id}/plan", {"tasks": tasks}, format="json")


def plan_rows(run: Run) -> list[tuple[str, str, list[str], int]]:
    return list(
        PlanTask.objects.filter(run=run)
        .order_by("layer", "key")
        .values_list("key", "title", "depends_on", "layer")
    )


def test_an_edit_replaces_the_plan_and_records_who_changed_what(
    api_client: Any, gated: Run, user: Any
) -> None:
    tasks = edited((0, {"title": "Build the clock"}), drop=("cli",)) + [
        {"key": "report", "title": "A weekly report", "description": "Sum the laps.",
         "files": ["timer/report.py"], "depends_on": ["storage"]},
    ]  # fmt: skip

    response = patch(api_client, gated, tasks)

    gated.refresh_from_db()
    decision = gated.design["edits"][0]
    assert response.status_code == 200
    assert plan_rows(gated) == [
        ("core", "Build the clock", [], 0),
        ("storage", "Implement storage", [], 0),
        ("report", "A weekly report", ["storage"], 1),
    ]
    assert decision["by"] == {"id": user.id, "email": user.email}
    assert decision["changes"] == [
        {"op": "changed", "task": "core",
         "fields": {"title": {"from": "Implement core", "to": "Build the clock"}}},
        {"op": "added", "task": "report", "title": "A weekly report"},
        {"op": "removed", "task": "cli", "title": "Implement cli"},
        {"op": "interfaces_dropped", "interfaces": ["timer/cli.py:main"]},
    ]  # fmt: skip
    assert [i["name"] for i in gated.design["interfaces"]] == ["tick"]
    assert [t["key"] for t in gated.design["plan"]] == ["core", "storage", "report"]
    assert response.json()["edits"] == gated.design["edits"]
    assert [t["key"] for t in response.json()["tasks"]] == ["core", "storage", "report"]
    event = Event.objects.get(run=gated, type="plan.edited")
    assert (event.payload["by"], event.payload["tasks"]) == (
        {"id": user.id, "email": user.email},
        ["core", "storage", "report"],
    )


def test_the_run_detail_shows_the_decisions_beside_the_rounds(
    api_client: Any, gated: Run, user: Any
) -> None:
    patch(api_client, gated, edited((2, {"description": "Only 'start' and 'stop'."})))

    body = api_client.get(f"/runs/{gated.id}").json()

    assert [edit["by"]["email"] for edit in body["plan_edits"]] == [user.email]
    assert body["plan_edits"][0]["changes"] == [
        {"op": "changed", "task": "cli", "fields": {"description": {
            "from": "The command line.", "to": "Only 'start' and 'stop'."}}},
    ]  # fmt: skip


def test_sending_the_same_plan_records_no_decision(api_client: Any, gated: Run) -> None:
    response = patch(api_client, gated, PLAN)

    gated.refresh_from_db()
    assert response.status_code == 200
    assert "edits" not in gated.design
    assert not Event.objects.filter(run=gated, type="plan.edited").exists()


@pytest.mark.parametrize(
    ("tasks", "detail"),
    [
        (
            edited((0, {"depends_on": ["cli"]})),
            "The tasks cli, core depend on each other in a cycle: no order can build them.",
        ),
        (
            edited((2, {"depends_on": ["core", "ui"]})),
            "Task 'cli' depends on 'ui', which the plan does not have.",
        ),
        (edited((1, {"key": "core"})), "Task key 'core' is used 2 times: keys are unique."),
        (edited((0, {"depends_on": ["core"]})), "Task 'core' depends on itself."),
        ([], "A plan needs at least one task."),
        (
            edited((0, {"files": ["../outside.py"]})),
            "Task 'core': File path leaves the project tree: '../outside.py'.",
        ),
        (
            edited((0, {"files": []})),
            "In task 'core': files: List should have at least 1 item after validation, not 0.",
        ),
        (
            edited((0, {"key": "Core!"})),
            "In task 'Core!': key: a key is 1 to 64 lowercase letters, digits, '-' or '_', "
            "starting with a letter or a digit.",
        ),
        ("core", "Send the whole plan as 'tasks': a list of tasks."),
    ],
)
def test_an_invalid_plan_is_refused_with_a_plain_reason_and_nothing_changes(
    api_client: Any, gated: Run, tasks: Any, detail: str
) -> None:
    before = plan_rows(gated)

    response = patch(api_client, gated, tasks)

    assert response.status_code == 400
    assert response.json() == {"detail": detail, "code": "invalid_plan"}
    assert plan_rows(gated) == before


def test_a_plan_past_the_task_bound_is_refused(api_client: Any, gated: Run, settings: Any) -> None:
    settings.PIPELINE_MAX_PLAN_TASKS = 2

    response = patch(api_client, gated, PLAN)

    assert response.status_code == 400
    assert response.json()["detail"] == "A plan may have at most 2 tasks; this one has 3."


@pytest.mark.parametrize("status", [Run.Status.RUNNING, Run.Status.QUEUED, Run.Status.COMPLETED])
def test_an_edit_of_a_run_not_waiting_for_approval_is_refused(
    api_client: Any, gated: Run, status: str
) -> None:
    Run.objects.filter(id=gated.id).update(status=status)

    response = patch(api_client, gated, edited(drop=("cli",)))

    assert response.status_code == 409
    assert response.json() == {
        "detail": "The plan can be edited only while the run waits for approval.",
        "code": "not_awaiting_approval",
    }
    assert PlanTask.objects.filter(run=gated).count() == 3


def test_a_task_that_already_ran_can_be_neither_removed_nor_changed(
    api_client: Any, gated: Run
) -> None:
    cli = PlanTask.objects.get(run=gated, key="cli")
    Step.objects.create(run=gated, role="coder", key="task:cli:coder:1", plan_task=cli)

    response = patch(api_client, gated, edited(drop=("cli",)))

    assert response.status_code == 409
    assert response.json()["code"] == "task_started"
    assert PlanTask.objects.filter(run=gated, key="cli").exists()


def test_another_users_plan_is_404(other_client: Any, gated: Run) -> None:
    response = patch(other_client, gated, edited(drop=("cli",)))

    assert response.status_code == 404
    assert PlanTask.objects.filter(run=gated).count() == 3
