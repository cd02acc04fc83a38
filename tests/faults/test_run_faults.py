"""Faults with a real worker: a provider failing for good, cancel mid-coding, resume."""

import json
import time
from typing import Any

import pytest

from pipeline.failures import FAILURE_REASONS
from pipeline.models import Event, Run, Step
from pipeline.services import run_start
from providers.offline.answers import calls_for
from tests.pipeline.conftest import wait_for_run, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.faults, pytest.mark.django_db(transaction=True)]

PROMPT = "A recipe scaler for cooks"


def last_event(run: Run) -> Event:
    return Event.objects.filter(run=run).order_by("-seq").first()


def test_a_provider_failing_permanently_fails_the_run_with_a_plain_reason_only(
    celery_worker: Any, api_client: Any, project: Any, script: Any, no_sandbox: None
) -> None:
    vendor_text = "invalid API key sk-live-4f9a8b7c6d5e"
    script(
        [
            {
                "role": "coder",
                "action": "error",
                "status_code": 401,
                "message": vendor_text,
                "times": -1,
            }
        ]
    )

    run = run_start(project=project, user=project.owner, prompt=PROMPT)
    run = wait_for_run(run.id)

    shown = json.dumps(
        [
            api_client.get(f"/runs/{run.id}").json(),
            api_client.get(f"/runs/{run.id}/steps").json(),
            list(Event.objects.filter(run=run).values_list("payload", flat=True)),
        ]
    )
    assert (run.status, run.error_code) == (Run.Status.FAILED, "provider_failed")
    assert run.error == FAILURE_REASONS["provider_failed"]
    assert "invalid API key" not in shown
    assert "sk-live" not in shown
    assert last_event(run).type == "run.failed"
    assert last_event(run).payload == {
        "reason": "provider_failed",
        "detail": FAILURE_REASONS["provider_failed"],
    }
    failed = Step.objects.filter(run=run, status=Step.Status.FAILED)
    assert set(failed.values_list("error", flat=True)) == {FAILURE_REASONS["provider_failed"]}


def test_cancel_during_coding_starts_no_further_step(
    celery_worker: Any, api_client: Any, project: Any, no_sandbox: None, settings: Any
) -> None:
    settings.OFFLINE_LATENCY_MS = 1500
    run = run_start(project=project, user=project.owner, prompt=PROMPT)
    wait_until(
        lambda: Step.objects.filter(run=run, role="coder", status=Step.Status.RUNNING).exists(),
        timeout=60,
    )

    response = api_client.post(f"/runs/{run.id}/cancel")
    started = set(Step.objects.filter(run=run, started_at__isnull=False).values_list("key"))
    time.sleep(4)  # longer than a model call: the coders in flight finish meanwhile

    run.refresh_from_db()
    assert response.status_code == 202
    assert run.status == Run.Status.CANCELLED
    assert set(Step.objects.filter(run=run, started_at__isnull=False).values_list("key")) == (
        started
    )
    assert not Step.objects.filter(run=run, role="tester").exists()
    assert last_event(run).type == "run.cancelled"


def test_resume_of_a_failed_run_reexecutes_only_the_unfinished_steps(
    celery_worker: Any, api_client: Any, project: Any, script: Any, no_sandbox: None
) -> None:
    script([{"role": "coder", "task": "cli", "action": "error", "times": 1}])
    run = run_start(project=project, user=project.owner, prompt=PROMPT)
    run = wait_for_run(run.id)
    finished_before = set(
        Step.objects.filter(run=run, status=Step.Status.SUCCEEDED).values_list("key", flat=True)
    )
    assert run.status == Run.Status.FAILED
    assert Step.objects.get(run=run, key="task:cli:coder:1").status == Step.Status.FAILED

    response = api_client.post(f"/runs/{run.id}/resume")
    run = wait_for_run(run.id, lambda r: r.is_finished and r.resume_count == 1)

    calls = calls_for(run.id)
    assert response.status_code == 202
    assert run.status == Run.Status.COMPLETED
    assert {key: calls[key] for key in finished_before} == dict.fromkeys(finished_before, 1)
    assert calls["task:cli:coder:1"] == 2
    assert Step.objects.filter(run=run).count() == len(
        set(Step.objects.filter(run=run).values_list("key", flat=True))
    )
    assert last_event(run).type == "run.completed"
