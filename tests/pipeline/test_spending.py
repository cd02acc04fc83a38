"""What a run may spend: only configured, priced models; a budget under the operator's cap;
and its user's runs within the daily budget, at the start and before every model call."""

from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.utils import timezone

from pipeline.models import Event, Run, Step
from pipeline.services import run_start
from tests.pipeline.conftest import wait_for_run
from tests.spending.helpers import record_past_spend

PROMPT = "A note keeper with search"


@pytest.fixture
def models(settings: Any) -> None:
    """A configured provider whose chain model is priced, plus two models outside the chain."""
    settings.LLM_PROVIDERS = {"paid": {"kind": "offline", "default_model": "offline"}}
    settings.LLM_CHAINS = {"default": ["paid:offline"]}
    settings.LLM_PRICES = {"paid:offline": [100, 100], "paid:priced-elsewhere": [1, 1]}
    settings.LLM_DEFAULT_PRICE = []
    settings.LLM_ALLOWED_MODELS = ["paid:unpriced"]
    settings.LLM_RUN_BUDGET_MAX_USD = Decimal("5")
    settings.LLM_USER_DAILY_BUDGET_USD = Decimal("20")
    settings.PIPELINE_DEFAULT_BUDGET_USD = ""


def _generate(client: Any, project: Any, **options: Any) -> Any:
    return client.post(
        f"/projects/{project.id}/generate",
        {"prompt": PROMPT, "options": options},
        format="json",
    )


def _past_run(project: Any, *, cost: str, finished_ago: timedelta | None) -> Run:
    """A run of the project's owner that spent ``cost`` (its calls in the spend ledger)."""
    now = timezone.now()
    run = Run.objects.create(
        project=project,
        created_by=project.owner,
        prompt="earlier",
        status=Run.Status.COMPLETED if finished_ago is not None else Run.Status.RUNNING,
        cost_usd=Decimal(cost),
        finished_at=now - finished_ago if finished_ago is not None else None,
        heartbeat_at=now - (finished_ago or timedelta(minutes=1)),
    )
    record_past_spend(
        user=project.owner,
        project=project,
        run=run,
        cost=cost,
        ago=finished_ago or timedelta(minutes=1),
    )
    return run


# --- Which models ---------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("entry", ["paid:offline", "paid"])
def test_a_run_may_name_a_model_of_the_configured_chains(api_client, project, models, entry):
    response = _generate(api_client, project, providers=[entry])

    assert response.status_code == 202
    assert Run.objects.get(id=response.json()["run_id"]).options["providers"] == ["paid:offline"]


@pytest.mark.django_db
def test_a_run_may_not_name_a_model_outside_the_chains_and_the_allow_list(
    api_client, project, models
):
    response = _generate(api_client, project, providers=["paid:priced-elsewhere"])

    assert response.status_code == 400
    assert response.json()["code"] == "invalid_options"
    assert (
        "'paid:priced-elsewhere' is not one of the configured models" in response.json()["detail"]
    )
    assert not Run.objects.exists()


@pytest.mark.django_db
def test_a_run_may_not_name_an_allowed_model_without_a_price(api_client, project, models):
    response = _generate(api_client, project, providers=["paid:unpriced"])

    assert response.status_code == 400
    assert "'paid:unpriced' has no price" in response.json()["detail"]


# --- The budget of one run ------------------------------------------------------------------


@pytest.mark.django_db
def test_a_budget_above_the_cap_is_refused_naming_the_cap(api_client, project, models):
    response = _generate(api_client, project, budget_usd="5.01")

    assert response.status_code == 400
    assert response.json() == {
        "detail": "budget_usd may be at most 5 USD per run (the operator's cap).",
        "code": "budget_above_cap",
        "cap_usd": "5",
    }


@pytest.mark.django_db
def test_a_run_without_a_budget_gets_the_cap_as_its_budget(api_client, project, models):
    response = _generate(api_client, project)

    assert Run.objects.get(id=response.json()["run_id"]).budget_usd == Decimal("5")


@pytest.mark.django_db
def test_a_default_budget_above_the_cap_is_lowered_to_the_cap(
    api_client, project, models, settings
):
    settings.PIPELINE_DEFAULT_BUDGET_USD = "50"

    response = _generate(api_client, project)

    assert Run.objects.get(id=response.json()["run_id"]).budget_usd == Decimal("5")


# --- The budget of one user per day ---------------------------------------------------------


@pytest.mark.django_db
def test_a_user_whose_runs_spent_the_daily_budget_cannot_start_another(api_client, project, models):
    _past_run(project, cost="12", finished_ago=timedelta(hours=3))
    _past_run(project, cost="8", finished_ago=None)  # still running

    response = _generate(api_client, project)

    assert response.status_code == 429
    assert response.json()["code"] == "daily_budget"
    assert response.json()["spent_usd"] == "20.000000"
    assert Run.objects.count() == 2


@pytest.mark.django_db
def test_spending_older_than_a_day_does_not_count(api_client, project, models):
    _past_run(project, cost="30", finished_ago=timedelta(hours=25))

    assert _generate(api_client, project).status_code == 202


@pytest.mark.django_db
def test_another_users_spending_does_not_count(api_client, project, models, other_user):
    from tests.factories import ProjectFactory

    _past_run(ProjectFactory(owner=other_user), cost="30", finished_ago=timedelta(hours=1))

    assert _generate(api_client, project).status_code == 202


@pytest.mark.slow
@pytest.mark.e2e
def test_a_run_that_reaches_the_daily_budget_mid_way_fails_with_reason_daily_budget(
    celery_worker, project, models, settings, no_sandbox
):
    settings.LLM_MAX_OUTPUT_TOKENS = 500
    # $0.30 left today: at $100 per million tokens, enough for the first calls (about
    # $0.05 each), not for the whole run (about $0.50).
    _past_run(project, cost="19.70", finished_ago=timedelta(hours=1))

    run = wait_for_run(run_start(project=project, user=project.owner, prompt=PROMPT).id)

    assert (run.status, run.error_code) == (Run.Status.FAILED, "daily_budget")
    assert Step.objects.filter(run=run, status=Step.Status.SUCCEEDED).exists()
    failed = Event.objects.filter(run=run, type="step.failed")
    assert {event.payload["reason"] for event in failed} == {"daily_budget"}
    assert Event.objects.filter(run=run).order_by("-seq").first().type == "run.failed"
    assert Decimal("0") < run.cost_usd < Decimal("0.30")
