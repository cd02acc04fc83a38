"""A worker SIGKILLed while it held a step's last answer for the step's store (the answer
arrived, the store had not run): the step's next holder stores the answer kept in Redis
(``pipeline.services.answer_stash``) and replays it, so no call is paid twice.

A fault point (``answer_held``) holds the worker at that moment, so the kill lands there
every time; beat and a fresh worker then find the step's stale heartbeat on their own.
"""

import time
from typing import Any

import pytest

from pipeline.faults import fault_held, fault_script_set
from pipeline.models import Step
from pipeline.services import run_start
from tests.faults.conftest import Start, kill, llm_worker
from tests.faults.test_worker_killed import assert_paid_and_completed_once
from tests.pipeline.conftest import wait_for_run, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.faults, pytest.mark.django_db(transaction=True)]


def test_a_worker_killed_holding_a_steps_last_answer_pays_for_no_call_again(
    project: Any, start: Start
) -> None:
    held_step = "task:cli:coder:1"
    fault_script_set([{"point": "answer_held", "step": held_step, "seconds": 600}])
    doomed = llm_worker(start, "doomed", "llm,sandbox,default")
    run = run_start(project=project, user=project.owner, prompt="A habit tracker with streaks")
    wait_until(fault_held, timeout=120)
    assert Step.objects.get(run=run, key=held_step).llm_calls == 0  # the answer is only held

    killed_at = kill(doomed)
    start("beat", "beat")
    llm_worker(start, "rescuer", "llm,sandbox,default")
    run = wait_for_run(run.id, timeout=180)
    print(f"completed {time.monotonic() - killed_at:.1f}s after the kill")

    assert fault_held() == [{"point": "answer_held", "step": held_step}]
    assert Step.objects.get(run=run, key=held_step).llm_calls == 1
    assert_paid_and_completed_once(run)
