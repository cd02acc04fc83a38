"""The spend ledger: every paid call kept with its user, project, run and usage, written with
the stored answer, and kept when the project or the run is deleted."""

from decimal import Decimal
from typing import Any

import pytest

from pipeline.models import Run, StepCall
from projects.services import project_delete
from providers.types import Completion
from spending.models import SpendEntry, SpendWindow
from spending.selectors import spend_last_day_usd
from tests.spending.conftest import ledger_for, make_run

pytestmark = pytest.mark.django_db


def _answer(cost: str = "0.05", tokens: tuple[int, int] = (10, 40)) -> Completion:
    return Completion(
        text="fine",
        parsed=None,
        tokens_in=tokens[0],
        tokens_out=tokens[1],
        cost_usd=Decimal(cost),
        model="priced",
        provider="vendor",
        latency_ms=7,
    )


def _rows() -> list[tuple[Any, ...]]:
    return list(
        SpendEntry.objects.order_by("id").values_list(
            "user_id",
            "user_ref",
            "user_email",
            "project_id",
            "project_ref",
            "project_name",
            "run_id",
            "run_ref",
            "step_key",
            "role",
        )
    )


def test_a_paid_call_lands_in_the_ledger_with_its_user_project_run_and_usage(project):
    run = make_run(project)

    ledger_for(run).record_usage(_answer(tokens=(10, 40)))

    user = project.owner
    entry = SpendEntry.objects.get()
    assert _rows() == [
        (
            user.pk,
            user.pk,
            user.email,
            project.pk,
            project.pk,
            project.name,
            run.pk,
            run.pk,
            "task:core:coder:1",
            "coder",
        )
    ]
    assert (entry.provider, entry.model, entry.tokens_in, entry.tokens_out, entry.cost_usd) == (
        "vendor",
        "priced",
        10,
        40,
        Decimal("0.050000"),
    )
    # Written with the stored answer: the step's call and the ledger's row are one call.
    assert StepCall.objects.get().cost_usd == entry.cost_usd


def test_deleting_the_project_keeps_its_calls_with_their_ids_and_its_name(api_client, project):
    run = make_run(project, status=Run.Status.COMPLETED)
    ledger_for(run).record_usage(_answer("0.05"))
    ledger_for(run, key="task:cli:coder:1").record_usage(_answer("0.07"))

    assert api_client.delete(f"/projects/{project.pk}").status_code == 204

    user = project.owner
    kept = (user.pk, user.pk, user.email, None, project.pk, project.name, None, run.pk)
    assert [row[:8] for row in _rows()] == [kept, kept]
    assert spend_last_day_usd(user_id=user.pk) == Decimal("0.120000")


def test_deleting_runs_keeps_their_calls_and_what_the_user_spent(project):
    run = make_run(project, status=Run.Status.COMPLETED)
    ledger_for(run).record_usage(_answer("0.05"))

    Run.objects.filter(pk=run.pk).delete()  # as the admin's delete action does

    assert SpendEntry.objects.values_list("run_id", "run_ref", "cost_usd").get() == (
        None,
        run.pk,
        Decimal("0.050000"),
    )
    assert spend_last_day_usd(user_id=project.owner.pk) == Decimal("0.050000")


def test_a_call_answered_after_its_project_was_deleted_is_still_recorded(project):
    run = make_run(project)
    ledger = ledger_for(run)
    ledger.record_usage(_answer("0.05"))

    project_delete(project=project)  # the run is cancelled and deleted mid-call
    ledger.record_usage(_answer("0.07"))

    rows = list(
        SpendEntry.objects.order_by("id").values_list("project_name", "run_ref", "cost_usd")
    )
    assert rows == [
        (project.name, run.pk, Decimal("0.050000")),
        (project.name, run.pk, Decimal("0.070000")),
    ]
    assert not StepCall.objects.exists()
    assert spend_last_day_usd(user_id=project.owner.pk) == Decimal("0.120000")


def test_a_calls_statement_run_twice_records_its_spend_once(project):
    run = make_run(project)
    ledger = ledger_for(run)
    Run.objects.filter(pk=run.pk).delete()
    params = ledger.usage_params(_answer("0.05"))

    ledger._store(params)
    ledger._attempted_ordinal = None  # as if the first commit had been lost with its connection
    ledger._store(params)

    assert SpendEntry.objects.count() == 1
    window = SpendWindow.objects.get(user=project.owner)
    assert [Decimal(str(v)) for v in window.buckets.values()] == [Decimal("0.05")]
