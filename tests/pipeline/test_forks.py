"""POST /runs/{id}/fork: which steps of the source a fork takes over, what it copies with
them, where it starts, and what it refuses. (The canvas is not run here: the fork's events
say where it starts; tests/pipeline/test_fork_e2e.py runs forks to the end.)"""

from decimal import Decimal
from typing import Any

import pytest

from pipeline.models import Event, PlanTask, Run, Step
from tests.factories import ProjectFactory

pytestmark = pytest.mark.django_db

DESIGN = ["design:1:architect", "design:1:planner", "design:2:architect", "design:2:planner"]
# core and storage first; cli after both; report after cli. core took two attempts.
TASK_STEPS = {
    "core": ["task:core:coder:1", "task:core:tester:1", "task:core:coder:2", "task:core:tester:2"],
    "storage": ["task:storage:coder:1", "task:storage:tester:1"],
    "cli": ["task:cli:coder:1", "task:cli:tester:1"],
    "report": ["task:report:coder:1", "task:report:tester:1"],
}
INTEGRATION = ["integrate:suite:1", "integrate:integrator", "integrate:tree"]
ALL_TASK_STEPS = [key for keys in TASK_STEPS.values() for key in keys]


def add_step(run: Run, key: str, task: PlanTask | None = None, **fields: Any) -> Step:
    parts = key.split(":")
    role = {"orchestrate": "orchestrator", "suite": "tester", "tree": "integrator"}.get(
        parts[-1] if key.startswith("integrate:") else parts[0], parts[-2] if task else parts[-1]
    )
    if key.startswith("design:"):
        fields.setdefault("round", int(parts[1]))
    if task is not None:
        fields.setdefault("attempt", int(parts[-1]))
    fields.setdefault("status", Step.Status.SUCCEEDED)
    return Step.objects.create(
        run=run,
        key=key,
        role=role,
        plan_task=task,
        provider="offline",
        model="offline",
        tokens_in=100,
        tokens_out=10,
        cost_usd=Decimal("0.001"),
        llm_calls=1,
        output={"step": key},
        **fields,
    )


@pytest.fixture(autouse=True)
def _second_offline_label(settings: Any) -> None:
    """The operator allows a second offline label, the chain forks switch to."""
    settings.LLM_ALLOWED_MODELS = ["offline:offline-b"]


@pytest.fixture
def source(project: Any) -> Run:
    """A completed run: two design rounds, four tasks, integration; every step succeeded."""
    run = Run.objects.create(
        project=project,
        created_by=project.owner,
        prompt="A shopping list manager",
        status=Run.Status.COMPLETED,
        options={"providers": ["offline:offline"], "max_fix_attempts": 4},
        design={"approved_round": 2, "summary": "The design.", "plan": []},
        tokens_in=2000,
        stages={
            "design": {"started_at": "2026-01-01T00:00:00", "completed_at": "2026-01-01T00:01:00"},
            "coding": {"started_at": "2026-01-01T00:01:00", "completed_at": "2026-01-01T00:02:00"},
        },
    )
    for key in DESIGN:
        add_step(run, key)
    add_step(run, "orchestrate")
    layers = {"core": 0, "storage": 0, "cli": 1, "report": 2}
    depends = {"cli": ["core", "storage"], "report": ["cli"]}
    for key, steps in TASK_STEPS.items():
        task = PlanTask.objects.create(
            run=run,
            key=key,
            title=f"Implement {key}",
            files=[f"pkg/{key}.py"],
            depends_on=depends.get(key, []),
            layer=layers[key],
            status=PlanTask.Status.SUCCEEDED,
            result={"files": {f"pkg/{key}.py": "x = 1\n"}, "deleted": [], "attempt": 1},
        )
        for step_key in steps:
            add_step(run, step_key, task)
    for key in INTEGRATION:
        add_step(run, key)
    return run


def fork(client: Any, run: Run, point: str, **body: Any) -> Any:
    return client.post(f"/runs/{run.id}/fork", {"from": point, **body}, format="json")


def forked(response: Any) -> Run:
    assert response.status_code == 202, response.json()
    return Run.objects.get(id=response.json()["run_id"])


def reused_keys(run: Run) -> list[str]:
    return list(
        Step.objects.filter(run=run, reused=True).order_by("id").values_list("key", flat=True)
    )


def forked_event(run: Run) -> dict[str, Any]:
    return Event.objects.get(run=run, type="run.forked").payload


# --- what is taken over, by fork point ---------------------------------------------------------


def test_a_fork_from_design_takes_over_nothing_and_designs_again(
    api_client: Any, source: Run
) -> None:
    run = forked(fork(api_client, source, "design"))

    assert (reused_keys(run), run.tasks.count(), run.design) == ([], 0, None)
    assert forked_event(run)["start"] == "design"
    assert (run.prompt, run.forked_from_id, run.fork_point) == (source.prompt, source.id, "design")


def test_a_fork_from_orchestrate_takes_over_the_design_rounds_and_the_plan(
    api_client: Any, source: Run
) -> None:
    run = forked(fork(api_client, source, "orchestrate"))

    assert reused_keys(run) == DESIGN
    assert run.design == source.design
    assert sorted(run.tasks.values_list("key", "status", "result", "depends_on")) == [
        ("cli", "pending", None, ["core", "storage"]),
        ("core", "pending", None, []),
        ("report", "pending", None, ["cli"]),
        ("storage", "pending", None, []),
    ]
    assert forked_event(run)["start"] == "orchestrate"


def test_a_fork_from_coding_takes_over_the_design_and_the_orchestrators_brief(
    api_client: Any, source: Run
) -> None:
    run = forked(fork(api_client, source, "coding"))

    assert reused_keys(run) == [*DESIGN, "orchestrate"]
    assert set(run.tasks.values_list("status", flat=True)) == {"pending"}
    assert forked_event(run)["start"] == "orchestrate"
    assert run.stages == {"design": {**source.stages["design"], "reused_from": source.id}}


def test_a_fork_from_integrate_takes_over_every_task_and_starts_at_integration(
    api_client: Any, source: Run
) -> None:
    run = forked(fork(api_client, source, "integrate"))

    assert reused_keys(run) == [*DESIGN, "orchestrate", *ALL_TASK_STEPS]
    assert sorted(run.tasks.values_list("key", "status")) == [
        (key, "succeeded") for key in ("cli", "core", "report", "storage")
    ]
    assert run.tasks.get(key="core").result == source.tasks.get(key="core").result
    assert forked_event(run)["start"] == "integrate"
    assert run.integration_claimed_at is not None


def test_a_fork_from_a_planner_step_takes_over_the_earlier_rounds_and_its_architect(
    api_client: Any, source: Run
) -> None:
    run = forked(fork(api_client, source, "design:2:planner"))

    assert reused_keys(run) == ["design:1:architect", "design:1:planner", "design:2:architect"]
    assert (run.tasks.count(), forked_event(run)["start"]) == (0, "design")


def test_a_fork_from_a_tester_step_redoes_that_test_and_the_tasks_that_depend_on_it(
    api_client: Any, source: Run
) -> None:
    run = forked(fork(api_client, source, "task:core:tester:2"))

    assert reused_keys(run) == [
        *DESIGN,
        "orchestrate",
        "task:core:coder:1",
        "task:core:tester:1",
        "task:core:coder:2",
        *TASK_STEPS["storage"],
    ]
    assert sorted(run.tasks.filter(status="succeeded").values_list("key", flat=True)) == ["storage"]
    assert forked_event(run)["tasks_reused"] == ["storage"]


def test_a_fork_from_a_coder_step_takes_over_the_tasks_it_does_not_depend_on_them(
    api_client: Any, source: Run
) -> None:
    run = forked(fork(api_client, source, "task:cli:coder:1"))

    assert reused_keys(run) == [
        *DESIGN,
        "orchestrate",
        *TASK_STEPS["core"],
        *TASK_STEPS["storage"],
    ]
    assert forked_event(run)["tasks_reused"] == ["core", "storage"]
    # The copies belong to the fork's own plan tasks.
    copied = Step.objects.get(run=run, key="task:core:coder:1")
    assert copied.plan_task.run_id == run.id


def test_a_fork_from_an_integration_step_takes_over_the_integration_steps_before_it(
    api_client: Any, source: Run
) -> None:
    run = forked(fork(api_client, source, "integrate:integrator"))

    assert reused_keys(run) == [*DESIGN, "orchestrate", *ALL_TASK_STEPS, "integrate:suite:1"]
    assert forked_event(run)["start"] == "integrate"


def test_only_succeeded_steps_are_taken_over_and_their_task_goes_on_from_there(
    api_client: Any, source: Run
) -> None:
    Step.objects.filter(run=source, key="task:storage:tester:1").update(status="running")
    PlanTask.objects.filter(run=source, key__in=["storage", "cli", "report"]).update(
        status="pending", result=None
    )
    Step.objects.filter(run=source, key__in=TASK_STEPS["cli"] + TASK_STEPS["report"]).delete()
    Step.objects.filter(run=source, key__startswith="integrate:").delete()
    Run.objects.filter(id=source.id).update(status=Run.Status.CANCELLED)

    run = forked(fork(api_client, source, "integrate"))

    assert reused_keys(run) == [*DESIGN, "orchestrate", *TASK_STEPS["core"], "task:storage:coder:1"]
    assert sorted(run.tasks.values_list("key", "status")) == [
        ("cli", "pending"),
        ("core", "succeeded"),
        ("report", "pending"),
        ("storage", "pending"),
    ]
    assert forked_event(run)["start"] == "orchestrate"


# --- what a reused step is -----------------------------------------------------------------------


def test_a_reused_step_copies_its_origins_output_and_figures_but_makes_no_call(
    api_client: Any, source: Run
) -> None:
    run = forked(fork(api_client, source, "coding"))

    origin = Step.objects.get(run=source, key="design:2:planner")
    copy = Step.objects.get(run=run, key="design:2:planner")
    assert (
        copy.reused,
        copy.reused_from_id,
        copy.status,
        copy.output,
        copy.round,
        copy.role,
        copy.tokens_in,
        copy.cost_usd,
        copy.llm_calls,
    ) == (True, origin.id, "succeeded", origin.output, 2, "planner", 100, Decimal("0.001"), 0)
    assert not copy.calls.exists()
    # The fork starts at nothing spent: what its reused steps cost was paid by the source.
    assert (run.tokens_in, run.tokens_out, run.cost_usd) == (0, 0, Decimal(0))


def test_the_forks_events_name_every_step_it_took_over(api_client: Any, source: Run) -> None:
    run = forked(fork(api_client, source, "coding"))

    events = list(Event.objects.filter(run=run).order_by("seq").values_list("type", flat=True))
    payload = forked_event(run)
    copies = {s.key: s for s in Step.objects.filter(run=run)}
    assert events == ["run.started", "run.forked"]
    assert payload["forked_from"] == source.id
    assert payload["reused"] == [
        {"key": key, "step_id": copies[key].id, "reused_from": copies[key].reused_from_id}
        for key in [*DESIGN, "orchestrate"]
    ]


def test_the_source_run_is_left_as_it_was(api_client: Any, source: Run) -> None:
    def state() -> Any:
        source.refresh_from_db()
        return (
            source.status,
            source.tokens_in,
            list(Step.objects.filter(run=source).values_list("id", "key", "status", "output")),
            list(PlanTask.objects.filter(run=source).values_list("id", "status", "result")),
        )

    before = state()

    forked(fork(api_client, source, "task:cli:coder:1"))

    assert state() == before


def test_a_fork_of_a_follow_up_changes_the_same_base(api_client: Any, source: Run) -> None:
    base = Run.objects.create(project=source.project, prompt="base", status=Run.Status.COMPLETED)
    Run.objects.filter(id=source.id).update(base_run=base)

    run = forked(fork(api_client, source, "coding"))

    assert run.base_run_id == base.id


# --- options ------------------------------------------------------------------------------------


def test_a_forks_options_are_the_sources_with_the_given_ones_over_them(
    api_client: Any, source: Run
) -> None:
    run = forked(fork(api_client, source, "coding", options={"providers": ["offline:offline-b"]}))

    assert (run.options["providers"], run.options["max_fix_attempts"]) == (
        ["offline:offline-b"],
        4,
    )


def test_a_fork_with_an_unconfigured_provider_is_400_and_starts_nothing(
    api_client: Any, source: Run
) -> None:
    response = fork(api_client, source, "coding", options={"providers": ["nowhere:model"]})

    assert (response.status_code, response.json()["code"]) == (400, "invalid_options")
    assert "not configured" in response.json()["detail"]
    assert Run.objects.count() == 1


def test_a_fork_over_the_operators_caps_is_400(api_client: Any, source: Run, settings: Any) -> None:
    settings.PIPELINE_OPTION_MAX_FIX_ATTEMPTS = 5

    response = fork(api_client, source, "coding", options={"max_fix_attempts": 6})

    assert (response.status_code, response.json()["code"]) == (400, "invalid_options")
    assert Run.objects.count() == 1


# --- refusals -----------------------------------------------------------------------------------


def test_a_fork_of_another_users_run_is_404_and_starts_nothing(
    other_client: Any, source: Run
) -> None:
    response = fork(other_client, source, "coding")

    assert (response.status_code, response.json()["code"]) == (404, "not_found")
    assert Run.objects.count() == 1


@pytest.mark.parametrize("point", ["finalize", "task:nope:coder:1", ""])
def test_a_fork_point_that_is_neither_a_stage_nor_a_step_of_the_run_is_400(
    api_client: Any, source: Run, point: str
) -> None:
    response = fork(api_client, source, point)

    assert response.status_code == 400
    assert Run.objects.count() == 1


def test_an_unknown_step_key_is_named_in_the_refusal(api_client: Any, source: Run) -> None:
    response = fork(api_client, source, "task:nope:coder:1")

    assert response.json() == {
        "detail": f"Fork from one of design, orchestrate, coding, integrate or a step key of "
        f"run {source.id}; 'task:nope:coder:1' is neither.",
        "code": "invalid_fork_point",
    }


def test_a_run_whose_design_was_never_approved_forks_only_from_design(
    api_client: Any, project: Any
) -> None:
    run = Run.objects.create(
        project=project, prompt="p", status=Run.Status.FAILED, error_code="max_design_rounds"
    )
    add_step(run, "design:1:architect")
    add_step(run, "design:1:planner")

    refused = fork(api_client, run, "coding")
    allowed = fork(api_client, run, "design:1:planner")

    assert (refused.status_code, refused.json()["code"]) == (400, "invalid_fork_point")
    assert reused_keys(forked(allowed)) == ["design:1:architect"]


def test_forking_counts_against_the_generate_rate_limit(
    api_client: Any, source: Run, settings: Any
) -> None:
    settings.ACCOUNTS_RATE_LIMITS = {**settings.ACCOUNTS_RATE_LIMITS, "generate": "1/hour"}

    first = fork(api_client, source, "coding")
    second = fork(api_client, source, "coding")

    assert (first.status_code, second.status_code) == (202, 429)


def test_a_run_of_another_project_of_the_user_still_forks_into_its_own_project(
    api_client: Any, user: Any
) -> None:
    elsewhere = ProjectFactory(owner=user)
    run = Run.objects.create(project=elsewhere, prompt="p", status=Run.Status.COMPLETED)

    new = forked(fork(api_client, run, "design"))

    assert new.project_id == elsewhere.id
