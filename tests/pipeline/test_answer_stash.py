"""A step's last answer held for the step's store: a holder that dies before the store
costs no call again, since the answer waits in Redis for the step's next holder."""

from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.utils import timezone

from pipeline.models import Run, Step
from pipeline.services.steps import StepSpec, step_run
from tests.pipeline.test_durability import ask_priced_last, paid_rows
from tests.pipeline.test_durability import run as run  # noqa: F401 - the fixture

pytestmark = pytest.mark.django_db(transaction=True)


class Killed(BaseException):
    """What a SIGKILL leaves: nothing after it runs (``step_run`` handles ``Exception``)."""


def die_holding_the_answer(run: Run, settings: Any) -> None:
    def ask_then_die(prepared: Any, ledger: Any) -> dict:
        ask_priced_last(prepared, ledger)
        raise Killed

    with pytest.raises(Killed):
        step_run(
            run_id=run.id,
            spec=StepSpec(role="coder", key="k"),
            prepare=lambda r, s: None,
            execute=ask_then_die,
        )
    stale = timezone.now() - timedelta(seconds=settings.PIPELINE_STALE_SECONDS + 1)
    Step.objects.filter(run=run, key="k").update(heartbeat_at=stale)


def take_over(run: Run) -> list[Any]:
    """The step's next holder, which asks the model only if nothing is replayed."""
    asked: list[Any] = []

    def replay_or_ask(prepared: Any, ledger: Any) -> dict:
        completion = ledger.replay()
        if completion is None:
            asked.append(True)
            return ask_priced_last(prepared, ledger)
        return {"text": completion.text}

    output = step_run(
        run_id=run.id,
        spec=StepSpec(role="coder", key="k"),
        prepare=lambda r, s: None,
        execute=replay_or_ask,
    )
    assert output == {"text": "fine"}
    return asked


def test_a_held_answer_whose_holder_died_is_stored_once_and_replayed(
    run: Run, settings: Any
) -> None:
    die_holding_the_answer(run, settings)
    assert paid_rows(run)[1] == []  # nothing of the answer reached PostgreSQL

    assert take_over(run) == []  # the model was not asked again

    assert paid_rows(run) == (
        ("succeeded", 1, 10, Decimal("0.05")),
        [(0, "fine", False)],
        (10, Decimal("0.05")),
        [("k", Decimal("0.05"))],
        {},  # the dead holder's reservation given back, the answer's cost spent once
    )


def test_without_redis_the_answer_is_asked_again_and_paid_once_more(
    run: Run, settings: Any, monkeypatch: Any
) -> None:
    class Away:
        def set(self, *args: Any, **kwargs: Any) -> None:
            raise ConnectionError("Redis is away")

        get = set

    monkeypatch.setattr("pipeline.services.answer_stash.get_redis", lambda: Away())
    die_holding_the_answer(run, settings)

    assert take_over(run) == [True]  # as before the stash: the call is made again

    rows = paid_rows(run)
    assert rows[0] == ("succeeded", 1, 10, Decimal("0.05"))
    assert rows[1] == [(0, "fine", False)]


def test_an_answer_stored_with_its_output_is_not_stored_again(run: Run) -> None:
    step_run(
        run_id=run.id,
        spec=StepSpec(role="coder", key="k"),
        prepare=lambda r, s: None,
        execute=ask_priced_last,
    )
    step = Step.objects.get(run=run, key="k")
    Step.objects.filter(id=step.id).update(status=Step.Status.PENDING)  # a retry, say

    assert take_over(run) == []  # the stored call is replayed, from PostgreSQL

    assert paid_rows(run)[1:] == (
        [(0, "fine", False)],
        (10, Decimal("0.05")),
        [("k", Decimal("0.05"))],
        {},
    )
