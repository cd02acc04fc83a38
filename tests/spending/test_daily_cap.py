"""The daily cap holds: deleting what spent it gives nothing back, and runs started together
cannot each spend the room that is left."""

from collections.abc import Iterator
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest

from pipeline.models import Run
from pipeline.services import run_start
from projects.models import Project
from providers.types import Completion
from spending.models import SpendEntry
from spending.selectors import spend_last_day_usd
from tests.pipeline.conftest import wait_for_run
from tests.spending.conftest import (
    ledger_for,
    make_run,
    offline_over_http,
    request_worst_case_usd,
)
from tests.spending.helpers import record_past_spend

PROMPT = "A note keeper with search"


@pytest.fixture
def capped(settings: Any) -> Any:
    """A priced chain and a $1.00 daily cap per user."""
    settings.LLM_PROVIDERS = {"paid": {"kind": "offline", "default_model": "offline"}}
    settings.LLM_CHAINS = {"default": ["paid:offline"]}
    settings.LLM_PRICES = {"paid:offline": [100, 100]}
    settings.LLM_DEFAULT_PRICE = []
    settings.LLM_RUN_BUDGET_MAX_USD = Decimal("5")
    settings.LLM_USER_DAILY_BUDGET_USD = Decimal("1.00")
    settings.PIPELINE_DEFAULT_BUDGET_USD = ""
    return settings


def _spend_to_the_cap(project: Any) -> Run:
    """A run of ``project`` whose one paid call cost the whole daily cap (the real ledger)."""
    run = make_run(project, status=Run.Status.COMPLETED)
    ledger_for(run).record_usage(
        Completion(
            text="{}",
            parsed=None,
            tokens_in=5000,
            tokens_out=5000,
            cost_usd=Decimal("1.00"),
            model="offline",
            provider="paid",
            latency_ms=10,
        )
    )
    return run


def _generate(client: Any, project_id: int) -> Any:
    return client.post(f"/projects/{project_id}/generate", {"prompt": PROMPT}, format="json")


@pytest.mark.django_db
def test_deleting_the_project_that_spent_the_daily_cap_does_not_reset_it(api_client, capped):
    created = api_client.post("/projects", {"name": "spender"}, format="json").json()
    _spend_to_the_cap(Project.objects.get(pk=created["id"]))

    assert api_client.delete(f"/projects/{created['id']}").status_code == 204
    fresh = api_client.post("/projects", {"name": "fresh start"}, format="json").json()
    response = _generate(api_client, fresh["id"])

    assert response.status_code == 429
    assert response.json()["code"] == "daily_budget"
    assert response.json()["spent_usd"] == "1.000000"
    assert not Run.objects.exists()


@pytest.mark.django_db
def test_deleting_the_runs_that_spent_the_daily_cap_does_not_reset_it(api_client, project, capped):
    _spend_to_the_cap(project)

    Run.objects.filter(project=project).delete()  # as the admin's delete action does
    response = _generate(api_client, project.pk)

    assert (response.status_code, response.json()["code"]) == (429, "daily_budget")
    assert SpendEntry.objects.values_list("run_id", "cost_usd").get() == (None, Decimal("1.00"))


@pytest.fixture
def wide_worker(transactional_db: Any) -> Iterator[Any]:
    """A real Celery worker with a thread for each of 30 runs: their calls overlap."""
    from celery.contrib.testing.worker import start_worker

    from config.celery import app

    with start_worker(
        app,
        pool="threads",
        concurrency=30,
        queues=["llm", "sandbox", "default"],
        perform_ping_check=False,
        loglevel="WARNING",
        shutdown_timeout=60,
    ) as worker:
        yield worker


@pytest.mark.slow
@pytest.mark.e2e
def test_thirty_runs_started_at_once_just_under_the_cap_pass_it_by_at_most_one_calls_worst_case(
    wide_worker, project, settings, stub_server, no_sandbox
):
    vendor = stub_server(offline_over_http(latency_seconds=0.3))
    settings.LLM_PROVIDERS = {
        "stub": {"kind": "openai", "base_url": vendor.url + "/v1", "api_key": "k"}
    }
    settings.LLM_CHAINS = {"default": ["stub:priced"]}
    settings.LLM_PRICES = {"stub:priced": [10, 10]}  # USD per million tokens
    settings.LLM_DEFAULT_PRICE = []
    settings.LLM_MAX_OUTPUT_TOKENS = 1000
    settings.LLM_CACHE_TTL_SECONDS = 0
    settings.LLM_RETRY_MAX_ATTEMPTS = 1
    settings.LLM_RUN_BUDGET_MAX_USD = Decimal("5")
    settings.PIPELINE_DEFAULT_BUDGET_USD = ""
    cap = settings.LLM_USER_DAILY_BUDGET_USD = Decimal("1.00")
    # Just under the cap: room for a few calls (each may cost a few cents), not for 30.
    record_past_spend(user=project.owner, cost="0.92", ago=timedelta(hours=2))

    runs = [run_start(project=project, user=project.owner, prompt=PROMPT) for _ in range(30)]
    finished = [wait_for_run(run.pk, timeout=300) for run in runs]

    spent = spend_last_day_usd(user_id=project.owner.pk)
    price = Decimal(10) / 1_000_000
    worst = max(request_worst_case_usd(received, price) for received in vendor.requests)
    calls = len(vendor.requests)
    refused = [run for run in finished if run.error_code == "daily_budget"]
    assert calls == SpendEntry.objects.filter(run__isnull=False).count() > 0
    assert spent <= cap + worst, f"spent {spent} of {cap}; one call's worst case is {worst}"
    # Every run that never got a call in was refused for the daily cap.
    assert len(refused) >= 30 - calls
