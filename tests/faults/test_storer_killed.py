"""A worker SIGKILLed after it stored a step and before it sent what follows: the reaper
resumes the run once the worker's liveness key lapses (``pipeline.services.liveness``), with
the quiet bound far beyond the test's patience, so nothing else could find the run.

As in ``test_worker_killed``, a fault point holds the worker right after the step's last
answer was stored with its output, so the kill lands at that moment every time.
"""

import time
from typing import Any

import pytest

from pipeline.faults import fault_held, fault_script_set
from pipeline.models import Event, Step
from pipeline.services import run_start
from tests.faults.conftest import Start, kill, llm_worker
from tests.faults.test_worker_killed import assert_paid_and_completed_once
from tests.pipeline.conftest import wait_for_run, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.faults, pytest.mark.django_db(transaction=True)]

# Longer than the test waits: a run found at all was found by its storer's lapsed key.
QUIET_SECONDS = "3600"


def test_a_run_whose_storer_died_before_sending_is_resumed_within_the_stale_bound(
    project: Any, start: Start
) -> None:
    held_step = "task:cli:coder:1"
    fault_script_set([{"point": "answer_stored", "step": held_step, "seconds": 600}])
    doomed = llm_worker(
        start, "doomed", "llm,sandbox,default", PIPELINE_QUIET_SECONDS=QUIET_SECONDS
    )
    run = run_start(project=project, user=project.owner, prompt="A habit tracker with streaks")
    wait_until(fault_held, timeout=120)
    stored_by = type(run).objects.values_list("stored_by", flat=True).get(id=run.id)
    assert stored_by, "the doomed worker did not name itself as the run's storer"

    killed_at = kill(doomed)
    start("beat", "beat", PIPELINE_QUIET_SECONDS=QUIET_SECONDS)
    llm_worker(start, "rescuer", "llm,sandbox,default", PIPELINE_QUIET_SECONDS=QUIET_SECONDS)
    run = wait_for_run(run.id, timeout=120)
    print(f"completed {time.monotonic() - killed_at:.1f}s after the kill")

    resumed = Event.objects.filter(run=run, type="run.resumed").values_list("payload", flat=True)
    assert list(resumed) == [{"reason": "worker_lost"}]
    assert Step.objects.get(run=run, key=held_step).llm_calls == 1
    assert_paid_and_completed_once(run)
