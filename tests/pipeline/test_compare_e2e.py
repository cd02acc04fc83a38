"""Compare on two real runs: a real Celery worker, the offline model, tests in the sandbox."""

from typing import Any

import pytest

from pipeline.models import Run, Step
from tests.pipeline.conftest import wait_for_run

pytestmark = [pytest.mark.slow, pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

PROMPT = "A shopping list manager"


def run_to_the_end(client: Any, project: Any) -> Run:
    response = client.post(
        f"/projects/{project.id}/generate",
        {"prompt": PROMPT, "base_run": None},
        format="json",
    )
    run = wait_for_run(response.json()["run_id"], timeout=300)
    assert (run.status, run.error) == (Run.Status.COMPLETED, "")
    return run


def test_compare_reports_the_rounds_fixes_and_sandbox_tests_the_runs_really_had(
    celery_worker: Any, api_client: Any, project: Any, script: Any
) -> None:
    plain = run_to_the_end(api_client, project)
    script(
        [
            {"role": "planner", "kind": "plan_review", "action": "object"},
            {"role": "coder", "task": "core", "action": "bug"},
        ]
    )
    troubled = run_to_the_end(api_client, project)

    body = api_client.get(f"/projects/{project.id}/compare?runs={plain.id},{troubled.id}").json()

    figures = {run["id"]: run for run in body["runs"]}
    for run in (plain, troubled):
        assert (
            figures[run.id]["tokens_in"],
            figures[run.id]["tokens_out"],
            figures[run.id]["steps"],
        ) == (run.tokens_in, run.tokens_out, Step.objects.filter(run=run).count())
        # The offline package ships five tests; the integration suite ran them all, green.
        assert figures[run.id]["tests"] == {
            "suite": "integration",
            "mode": "sandbox",
            "passed": 5,
            "failed": 0,
            "errors": 0,
        }
    assert [(figures[r.id]["design_rounds"], figures[r.id]["fix_attempts"]) for r in
            (plain, troubled)] == [(1, 0), (2, 1)]  # fmt: skip
    assert figures[troubled.id]["lines"] == figures[plain.id]["lines"]
    # Same package, same code once fixed: only the README (which quotes the design) differs.
    assert (body["diff"]["changed"], body["diff"]["added"], body["diff"]["removed"]) == (
        ["README.md"],
        [],
        [],
    )
