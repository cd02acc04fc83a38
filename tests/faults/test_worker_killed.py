"""Workers killed with SIGKILL mid-run: the beat reaper resumes the run, nothing is paid twice.

The workers and beat are real ``celery -A config worker`` / ``celery -A config beat``
processes on the test database and Redis db. A fault point (``pipeline.faults``, on only in
these processes) holds the worker right after a model's answer was stored (a step's last
answer is stored with its output) and before the step's task sent what follows, so the kill
lands at that moment every time; the test then starts beat and a fresh worker and calls
nothing by hand: beat's reaper must find the run and resume it. The work the kill lost is
found by the reaper's quiet bound (``PIPELINE_QUIET_SECONDS``, short in the rescuer).
Afterwards every model step has exactly one billed call, the run's tokens and cost are the
sums over its steps, and each step and the run completed exactly once.
"""

import time
from collections import Counter
from decimal import Decimal
from typing import Any

import pytest

from pipeline.faults import fault_held, fault_script_set
from pipeline.models import Event, Run, Step, StepCall
from pipeline.services import run_start
from projects.models import Artifact
from providers.offline.answers import calls_for, latency_set
from tests.faults.conftest import Start, kill, killed_at_point, llm_worker
from tests.pipeline.conftest import wait_for_run, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.faults, pytest.mark.django_db(transaction=True)]

# The reaper's quiet bound in the worker that runs it after the kill: a run with no step
# running and no progress for this long lost its queued work (here, what the killed step's
# task had yet to send). Short, so the test need not wait the default 180 s; long enough
# that no run waiting between two steps is taken for lost.
QUIET_SECONDS = "8"

# Steps that make no model call: the integrated tree and the combined test suite.
NO_MODEL_CALL = ("integrate:tree", "integrate:suite:")


def assert_paid_and_completed_once(run: Run) -> None:
    """One billed call per model step, usage summed exactly, one completion of each."""
    steps = list(Step.objects.filter(run=run))
    model_steps = [s.key for s in steps if not s.key.startswith(NO_MODEL_CALL)]
    completed = Counter(
        e.payload["key"] for e in Event.objects.filter(run=run, type="step.completed")
    )
    assert run.status == Run.Status.COMPLETED
    assert calls_for(run.id) == dict.fromkeys(model_steps, 1)
    assert {s.key: s.llm_calls for s in steps if s.key in model_steps} == dict.fromkeys(
        model_steps, 1
    )
    assert StepCall.objects.filter(step__run=run).count() == len(model_steps)
    assert (run.tokens_in, run.tokens_out, run.cost_usd) == (
        sum(s.tokens_in for s in steps),
        sum(s.tokens_out for s in steps),
        sum((s.cost_usd for s in steps), Decimal(0)),
    )
    assert completed == Counter(s.key for s in steps if s.key != "integrate:tree")
    assert Event.objects.filter(run=run, type="run.completed").count() == 1
    paths = list(Artifact.objects.filter(run=run).values_list("path", flat=True))
    assert paths and len(paths) == len(set(paths))


def test_an_llm_worker_killed_after_the_answer_was_stored_pays_for_no_call_again(
    project: Any, start: Start
) -> None:
    held_step = "task:cli:coder:1"
    run = killed_at_point(
        start,
        project,
        point="answer_stored",
        step=held_step,
        PIPELINE_QUIET_SECONDS=QUIET_SECONDS,
    )

    step = Step.objects.get(run=run, key=held_step)
    assert run.resume_count == 1
    assert (step.status, step.llm_calls) == (Step.Status.SUCCEEDED, 1)
    assert_paid_and_completed_once(run)


def test_a_sandbox_worker_killed_during_a_tester_step_pays_for_no_call_again(
    project: Any, start: Start
) -> None:
    held_step = "task:core:tester:1"
    fault_script_set([{"point": "answer_stored", "step": held_step, "seconds": 600}])
    llm_worker(start, "llm", sandbox=True, PIPELINE_QUIET_SECONDS=QUIET_SECONDS)
    # One process: the held tester is all the doomed worker runs. With two, another task's
    # tester could be inside its model call at the kill, a call cut off before its answer,
    # which is asked again by design (and would read here as a call paid twice).
    doomed = start(
        "doomed", "worker", "-Q", "sandbox", "--pool", "prefork", "-c", "1", sandbox=True
    )
    run = run_start(project=project, user=project.owner, prompt="A habit tracker with streaks")
    wait_until(fault_held, timeout=180)

    killed_at = kill(doomed)
    start("beat", "beat")
    start("rescuer", "worker", "-Q", "sandbox", "--pool", "prefork", "-c", "2", sandbox=True)
    run = wait_for_run(run.id, timeout=240)
    print(f"completed {time.monotonic() - killed_at:.1f}s after the kill")

    verdict = Event.objects.get(run=run, type="test.result", payload__task="core")
    assert fault_held() == [{"point": "answer_stored", "step": held_step}]
    # The tester's answer was stored with its verdict; the kill lost only the message that
    # follows it. The reaper resumes the run for that, unless another task's chain, still
    # running on the live llm worker, reached the integration first and carried the run on.
    assert run.resume_count <= 1
    assert verdict.payload["mode"] == "sandbox"
    assert_paid_and_completed_once(run)


def test_a_live_worker_in_a_model_call_longer_than_the_stale_bound_is_left_alone(
    project: Any, start: Start
) -> None:
    latency_set(roles={"coder": 8000}, default_ms=100)  # coders take over twice the bound
    start("beat", "beat")
    llm_worker(start, "worker", "llm,sandbox,default")

    run = run_start(project=project, user=project.owner, prompt="A habit tracker with streaks")
    run = wait_for_run(run.id, timeout=240)

    assert run.resume_count == 0
    assert not Event.objects.filter(run=run, type="run.resumed").exists()
    assert_paid_and_completed_once(run)
