"""A worker SIGKILLed after it stored a step and before it sent what follows: the reaper
resumes the run once the worker's liveness key lapses (``pipeline.services.liveness``), with
the quiet bound far beyond the test's patience, so nothing else could find the run.

As in ``test_worker_killed``, a fault point holds the worker right after the step's last
answer was stored with its output, so the kill lands at that moment every time.
"""

from typing import Any

import pytest

from pipeline.models import Event, Run, Step
from tests.faults.conftest import Start, killed_at_point
from tests.faults.test_worker_killed import assert_paid_and_completed_once

pytestmark = [pytest.mark.slow, pytest.mark.faults, pytest.mark.django_db(transaction=True)]

# Longer than the test waits: a run found at all was found by its storer's lapsed key.
QUIET_SECONDS = "3600"


def test_a_run_whose_storer_died_before_sending_is_resumed_within_the_stale_bound(
    project: Any, start: Start
) -> None:
    held_step = "task:cli:coder:1"

    def named_its_storer(run: Run) -> None:
        stored_by = Run.objects.values_list("stored_by", flat=True).get(id=run.id)
        assert stored_by, "the doomed worker did not name itself as the run's storer"

    run = killed_at_point(
        start,
        project,
        point="answer_stored",
        step=held_step,
        timeout=120,
        while_held=named_its_storer,
        PIPELINE_QUIET_SECONDS=QUIET_SECONDS,
    )

    resumed = Event.objects.filter(run=run, type="run.resumed").values_list("payload", flat=True)
    assert list(resumed) == [{"reason": "worker_lost"}]
    assert Step.objects.get(run=run, key=held_step).llm_calls == 1
    assert_paid_and_completed_once(run)
