"""Every loop is bounded: a bound hit ends the run failed, with the bound as its reason."""

from decimal import Decimal
from typing import Any

import pytest

from pipeline.models import Event, Run, Step
from pipeline.services import run_start
from tests.pipeline.conftest import wait_for_run

pytestmark = [pytest.mark.slow, pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

PROMPT = "A note keeper with search"


@pytest.fixture
def paid_model(settings: Any) -> str:
    """The offline model served as a priced provider, so runs spend real (fake) dollars."""
    settings.LLM_PROVIDERS = {**settings.LLM_PROVIDERS, "paid": {"kind": "offline"}}
    settings.LLM_PRICES = {"paid:offline": [100, 100]}
    settings.LLM_ALLOWED_MODELS = ["paid:offline"]
    return "paid:offline"


def last_event(run: Run) -> Event:
    return Event.objects.filter(run=run).order_by("-seq").first()


def test_a_planner_that_never_approves_stops_at_max_rounds(
    celery_worker: Any, project: Any, script: Any, no_sandbox: None
) -> None:
    script([{"role": "planner", "kind": "plan_review", "action": "object", "times": -1}])

    run = run_start(
        project=project, user=project.owner, prompt=PROMPT, options={"max_design_rounds": 2}
    )
    run = wait_for_run(run.id)

    assert (run.status, run.error_code) == (Run.Status.FAILED, "max_design_rounds")
    assert "2 round" in run.error
    assert Step.objects.filter(run=run, role="planner").count() == 2
    assert not Step.objects.filter(run=run, role="coder").exists()
    assert last_event(run).type == "run.failed"


def test_an_exhausted_budget_ends_the_run_failed_with_reason_budget(
    celery_worker: Any, project: Any, paid_model: str, no_sandbox: None
) -> None:
    run = run_start(
        project=project,
        user=project.owner,
        prompt=PROMPT,
        options={"providers": [paid_model], "budget_usd": "0.80"},
    )
    run = wait_for_run(run.id)

    assert (run.status, run.error_code) == (Run.Status.FAILED, "budget")
    assert Step.objects.filter(run=run, status=Step.Status.SUCCEEDED).count() >= 2
    assert Decimal("0") < run.cost_usd <= Decimal("0.80")
    assert last_event(run).type == "run.failed"
    assert last_event(run).payload["reason"] == "budget"


def test_a_task_still_red_after_max_fix_attempts_fails_the_run(
    celery_worker: Any, project: Any, script: Any, no_sandbox: None
) -> None:
    script([{"role": "coder", "task": "core", "action": "bug", "times": -1}])

    run = run_start(
        project=project, user=project.owner, prompt=PROMPT, options={"max_fix_attempts": 2}
    )
    run = wait_for_run(run.id)

    assert (run.status, run.error_code) == (Run.Status.FAILED, "max_fix_attempts")
    assert Step.objects.filter(run=run, key__startswith="task:core:coder:").count() == 2
    assert last_event(run).type == "run.failed"


def test_a_run_past_its_wall_time_fails_with_reason_wall_time(
    celery_worker: Any, project: Any, no_sandbox: None, settings: Any
) -> None:
    settings.PIPELINE_MAX_WALL_SECONDS = 1
    settings.OFFLINE_LATENCY_MS = 700

    run = run_start(project=project, user=project.owner, prompt=PROMPT)
    run = wait_for_run(run.id)

    steps = Step.objects.filter(run=run)
    assert (run.status, run.error_code) == (Run.Status.FAILED, "wall_time")
    assert last_event(run).type == "run.failed"
    assert steps.filter(started_at__lte=run.deadline_at).exists()
    assert list(steps.filter(started_at__gt=run.deadline_at).values_list("key", flat=True)) == []
    assert not steps.filter(role="integrator").exists()  # the run ended, it did not go on


def test_a_failover_to_the_next_provider_is_reported_and_the_run_completes(
    celery_worker: Any, project: Any, script: Any, no_sandbox: None, settings: Any
) -> None:
    settings.LLM_PROVIDERS = {**settings.LLM_PROVIDERS, "flaky": {"kind": "offline"}}
    settings.LLM_ALLOWED_MODELS = ["flaky:offline", "offline:offline"]
    script([{"role": "architect", "action": "error", "status_code": 401, "times": 1}])

    run = run_start(
        project=project,
        user=project.owner,
        prompt=PROMPT,
        options={"providers": ["flaky:offline", "offline:offline"]},
    )
    run = wait_for_run(run.id)

    failover = Event.objects.get(run=run, type="provider.failover")
    assert run.status == Run.Status.COMPLETED
    assert failover.payload["step"] == "design:1:architect"
    assert Step.objects.get(run=run, key="design:1:architect").provider == "offline"


def test_conflicts_still_unresolved_after_max_consult_rounds_fail_the_run(
    celery_worker: Any, project: Any, script: Any, no_sandbox: None, settings: Any
) -> None:
    settings.PIPELINE_MAX_CONSULT_ROUNDS = 2
    script(
        [
            {"role": "coder", "task": "storage", "action": "conflict", "times": 1},
            {"role": "planner", "kind": "consult_planner", "action": "object", "times": -1},
        ]
    )

    run = run_start(project=project, user=project.owner, prompt=PROMPT)
    run = wait_for_run(run.id)

    assert (run.status, run.error_code) == (Run.Status.FAILED, "max_consult_rounds")
    assert Step.objects.filter(run=run, key__startswith="integrate:consult:").count() == 4
    assert last_event(run).type == "run.failed"


def test_a_run_past_its_token_bound_fails_with_reason_max_tokens(
    celery_worker: Any, project: Any, no_sandbox: None, settings: Any
) -> None:
    settings.PIPELINE_MAX_RUN_TOKENS = 1000

    run = run_start(project=project, user=project.owner, prompt=PROMPT)
    run = wait_for_run(run.id)

    assert (run.status, run.error_code) == (Run.Status.FAILED, "max_tokens")
    assert run.tokens_in + run.tokens_out > 1000
    assert not Step.objects.filter(run=run, role="coder").exists()
