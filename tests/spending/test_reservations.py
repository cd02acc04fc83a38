"""Reserve, don't just check: a call's worst case is held against the user's daily cap in one
statement before the call, settled with the real cost when the answer is stored, given back
when no answer comes, and freed by the reaper when its holder died."""

import threading
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.db import connection
from django.utils import timezone

from pipeline.models import Step
from pipeline.services.steps import StepSpec, step_run
from providers.services import complete
from providers.types import BudgetExceeded, Completion, DailyBudgetExceeded, ProviderError
from spending.models import SpendWindow
from spending.tasks import expire_reservations
from tests.providers.stubs import openai_error
from tests.spending.conftest import MESSAGES, ledger_for, make_run
from tests.spending.helpers import record_past_spend

CAP = Decimal("1.00")
CHAIN = ["vendor:priced"]


def _held(user: Any) -> dict[str, Decimal]:
    """The user's reservations: key -> USD."""
    window = SpendWindow.objects.get(user=user)
    return {key: Decimal(str(value["usd"])) for key, value in window.reservations.items()}


def _spent_in_window(user: Any) -> Decimal:
    window = SpendWindow.objects.get(user=user)
    return sum((Decimal(str(value)) for value in window.buckets.values()), Decimal(0))


def _answer(cost: str) -> Completion:
    return Completion(
        text="fine",
        parsed=None,
        tokens_in=10,
        tokens_out=40,
        cost_usd=Decimal(cost),
        model="priced",
        provider="vendor",
        latency_ms=3,
    )


@pytest.mark.django_db(transaction=True)
def test_thirty_reservations_at_once_hold_exactly_what_fits_under_the_cap(project):
    ledgers = [ledger_for(make_run(project)) for _ in range(30)]
    start = threading.Barrier(30)
    granted: list[bool] = []

    def reserve(ledger: Any) -> None:
        start.wait()
        try:
            granted.append(ledger.reserve(amount_usd=Decimal("0.11"), daily_cap_usd=CAP).granted)
        finally:
            connection.close()

    threads = [threading.Thread(target=reserve, args=(ledger,)) for ledger in ledgers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    # $0.11 nine times is $0.99; a tenth would pass the $1.00 cap.
    assert (granted.count(True), granted.count(False)) == (9, 21)
    assert sum(_held(project.owner).values()) == Decimal("0.99")


@pytest.mark.django_db
def test_a_settled_call_holds_its_real_cost_instead_of_its_worst_case(project):
    first, second = ledger_for(make_run(project)), ledger_for(make_run(project))
    assert first.reserve(amount_usd=Decimal("0.11"), daily_cap_usd=CAP).granted

    first.record_usage(_answer("0.05"))

    assert (_held(project.owner), _spent_in_window(project.owner)) == ({}, Decimal("0.05"))
    assert second.reserve(amount_usd=Decimal("0.95"), daily_cap_usd=CAP).granted
    refused = ledger_for(make_run(project)).reserve(amount_usd=Decimal("0.01"), daily_cap_usd=CAP)
    assert (refused.granted, refused.daily_left_usd) == (False, Decimal("0"))


@pytest.mark.django_db
def test_a_ledgers_next_reservation_gives_back_its_previous_one(project):
    ledger = ledger_for(make_run(project))

    ledger.reserve(amount_usd=Decimal("0.40"), daily_cap_usd=CAP)  # attempt 1
    ledger.reserve(amount_usd=Decimal("0.70"), daily_cap_usd=CAP)  # attempt 2, or the next model

    assert list(_held(project.owner).values()) == [Decimal("0.70")]


@pytest.mark.django_db
def test_a_call_past_the_daily_cap_is_refused_before_it_is_sent(priced, project, llm_settings):
    llm_settings.LLM_USER_DAILY_BUDGET_USD = CAP
    record_past_spend(user=project.owner, cost="0.95", ago=timedelta(hours=3))
    ledger = ledger_for(make_run(project))

    with pytest.raises(DailyBudgetExceeded) as refused:
        # Up to (10 + 100) tokens at $0.001: $0.11, and $0.05 is left.
        complete(
            role="coder", messages=MESSAGES, chain=["vendor:priced"], run=ledger, max_tokens=100
        )

    assert priced.requests == []
    assert refused.value.code == "daily_budget"
    assert "$0.0500 left of the $1.00" in refused.value.detail
    assert _held(project.owner) == {}


@pytest.mark.django_db
def test_the_run_budget_is_checked_before_every_call_through_the_ledger(
    priced, project, llm_settings
):
    llm_settings.LLM_USER_DAILY_BUDGET_USD = CAP
    ledger = ledger_for(make_run(project, budget_usd=Decimal("0.15")))
    # May cost $0.11 of $0.15; costs $0.05.
    complete(role="coder", messages=MESSAGES, chain=CHAIN, run=ledger, max_tokens=100)

    with pytest.raises(BudgetExceeded) as refused:  # may cost $0.11 of the $0.10 left
        complete(role="coder", messages=MESSAGES, chain=CHAIN, run=ledger, max_tokens=100)

    assert (len(priced.requests), refused.value.code) == (1, "budget")
    assert _held(project.owner) == {}


@pytest.mark.django_db
def test_a_call_that_got_no_answer_gives_its_reservation_back(priced, project, llm_settings):
    llm_settings.LLM_USER_DAILY_BUDGET_USD = CAP
    priced.default = lambda _: openai_error(400)
    ledger = ledger_for(make_run(project))

    with pytest.raises(ProviderError):
        complete(
            role="coder", messages=MESSAGES, chain=["vendor:priced"], run=ledger, max_tokens=100
        )

    assert len(priced.requests) == 1
    assert _held(project.owner) == {}


@pytest.mark.django_db
def test_a_reservation_whose_call_never_settled_expires_and_the_reaper_drops_it(project):
    dead = ledger_for(make_run(project))
    assert dead.reserve(amount_usd=Decimal("0.90"), daily_cap_usd=CAP).granted  # then it died
    waiting = ledger_for(make_run(project))
    assert not waiting.reserve(amount_usd=Decimal("0.50"), daily_cap_usd=CAP).granted
    # LLM_RESERVATION_SECONDS pass.
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE spending_spendwindow SET reservations = jsonb_set(reservations, "
            "ARRAY[(SELECT k FROM jsonb_object_keys(reservations) AS k LIMIT 1), 'until'], "
            "to_jsonb(extract(epoch FROM now()) - 1))"
        )

    assert expire_reservations() == [project.owner.pk]
    assert _held(project.owner) == {}
    assert waiting.reserve(amount_usd=Decimal("0.50"), daily_cap_usd=CAP).granted


@pytest.mark.django_db(transaction=True)
def test_a_step_taken_over_gives_back_what_its_dead_holder_reserved(project, settings):
    run = make_run(project)
    dead = ledger_for(run, key="task:core:coder:1")
    assert dead.reserve(amount_usd=Decimal("0.90"), daily_cap_usd=CAP).granted
    stale = timezone.now() - timedelta(seconds=settings.PIPELINE_STALE_SECONDS + 5)
    Step.objects.filter(pk=dead.step_id).update(heartbeat_at=stale)  # its worker died

    output = step_run(
        run_id=run.pk,
        spec=StepSpec(role="coder", key="task:core:coder:1"),
        prepare=lambda run, step: None,
        execute=lambda prepared, ledger: {
            "granted": ledger.reserve(amount_usd=Decimal("0.50"), daily_cap_usd=CAP).granted
        },
    )

    assert output == {"granted": True}
    assert list(_held(project.owner).values()) == [Decimal("0.50")]


@pytest.mark.django_db(transaction=True)  # as in a worker: no test transaction around it
def test_a_paid_call_costs_two_statements_its_reservation_and_its_stored_answer(
    priced, project, llm_settings
):
    from django.test.utils import CaptureQueriesContext

    llm_settings.LLM_USER_DAILY_BUDGET_USD = CAP
    ledger = ledger_for(make_run(project, budget_usd=Decimal("5")))

    with CaptureQueriesContext(connection) as queries:
        complete(role="coder", messages=MESSAGES, chain=CHAIN, run=ledger, max_tokens=100)

    statements = [query["sql"] for query in queries.captured_queries]
    # The reservation, then the answer with its spend and the reservation's settlement in one
    # statement (its transaction also holds the rare second insert of a clashing ordinal).
    assert [sql.split()[0] for sql in statements] == ["WITH", "BEGIN", "WITH", "COMMIT"]
    assert "INSERT INTO spending_spendwindow" in statements[0]
    assert "INSERT INTO pipeline_stepcall" in statements[2]
    assert "INSERT INTO spending_spendentry" in statements[2]


def test_the_reaper_of_reservations_is_in_the_beat_schedule() -> None:
    from config.celery import app

    schedule = {entry["task"]: entry["schedule"] for entry in app.conf.beat_schedule.values()}
    assert schedule["spending.expire_reservations"] == timedelta(seconds=60)
    assert "spending.expire_reservations" in app.tasks
