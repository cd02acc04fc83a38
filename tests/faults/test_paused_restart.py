"""A paused run, and a message to one of its tasks, survive SIGKILL of every process.

Real ``celery -A config worker`` and ``celery -A config beat`` processes on the test
database and Redis db. The run is paused while its first coders are in flight; once they
have finished, every worker and beat are killed with SIGKILL and started again. The run
stays paused (the reaper leaves it alone, the re-delivered work stops at the status), the
message waits in its row, and after POST /runs/{id}/resume the run completes with no step
started or paid twice, the message in the prompt of the task's coder.
"""

import time
from collections import Counter
from typing import Any

import pytest

from pipeline.models import Event, Run, Step
from pipeline.services import run_start
from providers.offline.answers import calls_for, latency_set, prompt_for
from tests.faults.conftest import Start, kill, llm_worker
from tests.faults.test_worker_killed import assert_paid_and_completed_once
from tests.pipeline.conftest import wait_for_run, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.faults, pytest.mark.django_db(transaction=True)]

MESSAGE = "Keep the command names short."


def test_a_paused_run_stays_paused_through_sigkill_of_every_process_then_completes(
    project: Any, api_client: Any, start: Start
) -> None:
    latency_set(roles={"coder": 2500}, default_ms=100)
    processes = [start("beat", "beat"), llm_worker(start, "first", "llm,sandbox,default")]
    run = run_start(project=project, user=project.owner, prompt="A habit tracker with streaks")
    wait_until(
        lambda: Step.objects.filter(run=run, role="coder", status=Step.Status.RUNNING).exists(),
        timeout=180,
    )
    assert api_client.post(f"/runs/{run.id}/pause").status_code == 202
    wait_until(lambda: not Step.objects.filter(run=run, status=Step.Status.RUNNING).exists())
    sent = api_client.post(f"/runs/{run.id}/tasks/cli/messages", {"text": MESSAGE}, format="json")
    finished = dict(Step.objects.filter(run=run).values_list("key", "status"))

    for process in processes:
        kill(process)
    start("beat-again", "beat")
    llm_worker(start, "second", "llm,sandbox,default")
    # Well past the stale bound (3 s) and many reaper passes (1 s): nothing moves.
    deadline = time.monotonic() + 12
    while time.monotonic() < deadline:
        assert Run.objects.get(id=run.id).status == Run.Status.PAUSED
        assert dict(Step.objects.filter(run=run).values_list("key", "status")) == finished
        time.sleep(0.5)

    assert api_client.post(f"/runs/{run.id}/resume").status_code == 202
    run = wait_for_run(run.id, timeout=240)

    started = Counter(e.payload["key"] for e in Event.objects.filter(run=run, type="step.started"))
    assert sent.status_code == 201
    assert run.resume_count == 1
    assert Event.objects.filter(run=run, type="run.resumed").count() == 1
    assert set(started.values()) == {1}
    assert set(calls_for(run.id).values()) == {1}
    assert MESSAGE in prompt_for(run.id, "task:cli:coder:1")
    assert_paid_and_completed_once(run)


def test_a_paused_run_whose_step_holder_was_killed_waits_for_resume_and_pays_once(
    project: Any, api_client: Any, start: Start
) -> None:
    latency_set(roles={"coder": 6000}, default_ms=100)
    processes = [start("beat", "beat"), llm_worker(start, "first", "llm,sandbox,default")]
    run = run_start(project=project, user=project.owner, prompt="A habit tracker with streaks")
    wait_until(
        lambda: Step.objects.filter(run=run, role="coder", status=Step.Status.RUNNING).exists(),
        timeout=180,
    )
    assert api_client.post(f"/runs/{run.id}/pause").status_code == 202
    for process in processes:
        kill(process)  # a coder's model call is cut off: its step stays running, unbeaten
    held = set(
        Step.objects.filter(run=run, status=Step.Status.RUNNING).values_list("key", flat=True)
    )
    start("beat-again", "beat")
    llm_worker(start, "second", "llm,sandbox,default")
    # The holder is dead past the stale bound (3 s), yet the reaper leaves a paused run alone.
    deadline = time.monotonic() + 12
    while time.monotonic() < deadline:
        assert Run.objects.get(id=run.id).status == Run.Status.PAUSED
        assert (
            set(
                Step.objects.filter(run=run, status=Step.Status.RUNNING).values_list(
                    "key", flat=True
                )
            )
            == held
        )
        time.sleep(0.5)

    assert api_client.post(f"/runs/{run.id}/resume").status_code == 202
    run = wait_for_run(run.id, timeout=240)

    assert held and all(key.startswith("task:") for key in held)
    assert run.resume_count == 1
    assert Event.objects.filter(run=run, type="run.resumed").count() == 1
    assert set(calls_for(run.id).values()) == {1}
    assert_paid_and_completed_once(run)
