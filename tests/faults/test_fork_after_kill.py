"""A fork of a run whose worker was killed (SIGKILL) mid-coding, and that was then cancelled.

The source's worker is a real ``celery -A config worker`` process, held by a fault point
right after the cli coder's answer arrived (held for its step's store, so neither is stored)
and killed there. No beat runs, so nothing resumes the source: it is cancelled, with its cli
coder still ``running``. Forked from "integrate" with another chain on a fresh worker, the new run
takes over only the steps that succeeded (the design, the orchestrator, core and storage,
not the cli coder the kill interrupted), asks the model again for the rest, and completes;
the source stays as the kill left it.
"""

from typing import Any

import pytest

from pipeline.faults import fault_held, fault_script_set
from pipeline.models import Run, Step
from pipeline.services import run_start
from providers.offline.answers import calls_for
from tests.faults.conftest import Start, kill, llm_worker
from tests.pipeline.conftest import wait_for_run, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.faults, pytest.mark.django_db(transaction=True)]

HELD_STEP = "task:cli:coder:1"


@pytest.fixture(autouse=True)
def _second_offline_label(settings: Any, monkeypatch: Any) -> None:
    """The operator allows a second offline label, the chain the fork switches to."""
    settings.LLM_ALLOWED_MODELS = ["offline:offline-b"]
    monkeypatch.setenv("LLM_ALLOWED_MODELS", "offline:offline-b")


def test_a_run_killed_mid_coding_and_cancelled_forks_with_only_its_succeeded_steps(
    project: Any,
    start: Start,
    api_client: Any,
) -> None:
    fault_script_set([{"point": "answer_held", "step": HELD_STEP, "seconds": 600}])
    doomed = llm_worker(start, "doomed", "llm,sandbox,default")
    source = run_start(project=project, user=project.owner, prompt="A habit tracker")
    wait_until(fault_held, timeout=120)
    kill(doomed)
    assert api_client.post(f"/runs/{source.id}/cancel").status_code == 202
    source_steps = dict(Step.objects.filter(run=source).values_list("key", "status"))
    succeeded = {key for key, status in source_steps.items() if status == "succeeded"}

    response = api_client.post(
        f"/runs/{source.id}/fork",
        {"from": "integrate", "options": {"providers": ["offline:offline-b"]}},
        format="json",
    )
    llm_worker(start, "rescuer", "llm,sandbox,default")
    forked = wait_for_run(response.json()["run_id"], timeout=240)

    reused = set(Step.objects.filter(run=forked, reused=True).values_list("key", flat=True))
    assert source_steps[HELD_STEP] == "running"
    assert succeeded == {
        "design:1:architect",
        "design:1:planner",
        "orchestrate",
        *(f"task:{task}:{role}:1" for task in ("core", "storage") for role in ("coder", "tester")),
    }
    assert (response.status_code, forked.status, forked.error) == (202, Run.Status.COMPLETED, "")
    assert reused == succeeded
    assert calls_for(forked.id) == {
        "task:cli:coder:1": 1,
        "task:cli:tester:1": 1,
        "integrate:integrator": 1,
    }
    source.refresh_from_db()
    assert source.status == Run.Status.CANCELLED
    assert dict(Step.objects.filter(run=source).values_list("key", "status")) == {
        **source_steps,
    }
