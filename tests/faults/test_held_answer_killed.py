"""A worker SIGKILLed while it held a step's last answer for the step's store (the answer
arrived, the store had not run): the step's next holder stores the answer kept in Redis
(``pipeline.services.answer_stash``) and replays it, so no call is paid twice.

A fault point (``answer_held``) holds the worker at that moment, so the kill lands there
every time; beat and a fresh worker then find the step's stale heartbeat on their own.
"""

from typing import Any

import pytest

from pipeline.models import Run, Step
from tests.faults.conftest import Start, killed_at_point
from tests.faults.test_worker_killed import assert_paid_and_completed_once

pytestmark = [pytest.mark.slow, pytest.mark.faults, pytest.mark.django_db(transaction=True)]


def test_a_worker_killed_holding_a_steps_last_answer_pays_for_no_call_again(
    project: Any, start: Start
) -> None:
    held_step = "task:cli:coder:1"

    def only_held(run: Run) -> None:
        assert Step.objects.get(run=run, key=held_step).llm_calls == 0  # not stored yet

    run = killed_at_point(start, project, point="answer_held", step=held_step, while_held=only_held)

    assert Step.objects.get(run=run, key=held_step).llm_calls == 1
    assert_paid_and_completed_once(run)
