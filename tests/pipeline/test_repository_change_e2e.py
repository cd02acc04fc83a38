"""A change to an imported repository on the real stack: a real Celery worker, the offline
model (a labelled test double) and the sandbox. Import -> baseline -> a run whose coder
changes a file with edit blocks -> the tester runs the repository's own suite -> a broken
change is caught as a regression and fixed in the loop; an edit block that does not apply
fails the attempt, and its reason reaches the next coder."""

from pathlib import Path
from typing import Any

import pytest

from pipeline.models import PlanTask, Run, Step
from projects.artifacts import artifact_read
from projects.models import Artifact
from providers.offline.repository import REGRESSION_MARKER
from tests.pipeline.conftest import wait_for_run
from tests.pipeline.repo_fixtures import CALC_FILES, calc_repository

pytestmark = [pytest.mark.slow, pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

OPS = "calc/ops.py"
NEW_TEST = "tests/test_ops_add_all.py"
ADD_ALL = (
    "def add_all(calls: list[tuple]) -> list:\n"
    '    """Apply add to each tuple of arguments in ``calls``, in order."""\n'
    "    return [add(*args) for args in calls]\n"
)
REGRESSION = "tests/test_ops.py::test_add_adds"


@pytest.fixture(autouse=True)
def _media(tmp_path: Path, settings: Any) -> None:
    settings.MEDIA_ROOT = str(tmp_path / "media")
    settings.REPOSITORY_ALLOW_LOCAL = True


def imported(client: Any, project: Any, tmp_path: Path) -> Run:
    calc_repository(tmp_path / "calc")
    response = client.post(
        f"/projects/{project.id}/import",
        {"git": {"url": f"file://{tmp_path / 'calc'}"}},
        format="json",
    )
    run = wait_for_run(response.json()["run_id"], timeout=240)
    assert (run.status, run.error) == ("completed", "")
    return run


def change(client: Any, project: Any, **options: Any) -> Run:
    response = client.post(
        f"/projects/{project.id}/generate",
        {"prompt": "Add a way to add many pairs at once to ops", "options": options},
        format="json",
    )
    assert response.status_code == 202, response.json()
    return wait_for_run(response.json()["run_id"], timeout=400)


def output(run: Run, key: str) -> dict[str, Any]:
    return Step.objects.get(run=run, key=key).output


def tree_of(run: Run) -> dict[str, bytes]:
    return {a.path: artifact_read(artifact=a) for a in Artifact.objects.filter(run=run)}


def test_a_regression_is_caught_against_the_baseline_and_fixed_in_the_loop(
    celery_worker, api_client, project, tmp_path, script
):
    base = imported(api_client, project, tmp_path)
    script([{"role": "coder", "action": "regress", "times": 1}])

    run = change(api_client, project)

    assert (run.status, run.error, run.base_run_id) == ("completed", "", base.id)
    # The plan names the existing file it edits and the new test it adds.
    assert list(PlanTask.objects.filter(run=run).values_list("files", flat=True)) == [
        [OPS, NEW_TEST]
    ]
    first = output(run, "task:edit_ops:coder:1")
    assert [edit["path"] for edit in first["edits"]] == [OPS, OPS]
    assert REGRESSION_MARKER in first["files"][OPS]
    verdict = output(run, "task:edit_ops:tester:1")
    assert (verdict["passed"], verdict["mode"], verdict["regressions"]) == (
        False,
        "sandbox",
        [REGRESSION],
    )
    assert verdict["failures"][0] == (
        f"Regression: {REGRESSION} passed before this change and fails now."
    )
    second = output(run, "task:edit_ops:coder:2")
    assert f"Fixed: Regression: {REGRESSION} passed before this change" in second["notes"]
    assert output(run, "task:edit_ops:tester:2")["passed"] is True
    suite = output(run, "integrate:suite:1")
    assert (suite["passed"], suite["regressions"]) == (True, [])
    assert set(suite["report"]["test_ids"]) == {
        "tests/test_ops.py::test_add_adds",
        "tests/test_ops.py::test_mul_multiplies",
        "tests/test_ops_add_all.py::test_add_all_of_no_calls_is_empty",
        "tests/test_ops_add_all.py::test_add_all_applies_add_to_each_call_in_order",
    }
    tree = tree_of(run)
    assert tree[OPS].decode() == CALC_FILES[OPS] + "\n\n" + ADD_ALL
    unchanged = {path for path in CALC_FILES if path != OPS}
    assert {path: tree[path] for path in unchanged} == {
        path: c.encode() if isinstance(c, str) else c
        for path, c in CALC_FILES.items()
        if path in unchanged
    }
    assert set(tree) == set(CALC_FILES) | {NEW_TEST}
    logo = Artifact.objects.get(run=run, path="assets/logo.png")
    assert logo.binary is True
    detail = api_client.get(f"/runs/{run.id}").json()
    assert (detail["regressions"], detail["regressions_caught"]) == ([], [REGRESSION])
    assert detail["import_source"]["run"] == base.id


def test_a_regression_still_there_after_the_last_attempt_fails_the_run_and_is_listed(
    celery_worker, api_client, project, tmp_path, script
):
    imported(api_client, project, tmp_path)
    script([{"role": "coder", "action": "regress", "times": -1}])

    run = change(api_client, project, max_fix_attempts=2)

    assert (run.status, run.error_code) == ("failed", "max_fix_attempts")
    assert REGRESSION in run.error
    detail = api_client.get(f"/runs/{run.id}").json()
    assert (detail["regressions"], detail["regressions_caught"]) == ([REGRESSION], [REGRESSION])


def test_an_edit_block_that_does_not_apply_fails_the_attempt_and_its_reason_reaches_the_coder(
    celery_worker, api_client, project, tmp_path, script, no_sandbox
):
    imported(api_client, project, tmp_path)
    script([{"role": "coder", "action": "stale", "times": 1}])

    run = change(api_client, project)

    assert (run.status, run.error) == ("completed", "")
    first = output(run, "task:edit_ops:coder:1")
    reason = (
        f"Edit 1 ({OPS}): the search text was not found in {OPS} (it must match the file's "
        "current content exactly, whitespace included)"
    )
    assert first["files"] == {}
    assert len(first["edit_errors"]) == 1 and first["edit_errors"][0].startswith(reason)
    verdict = output(run, "task:edit_ops:tester:1")
    assert (verdict["passed"], verdict["mode"], verdict["failures"]) == (
        False,
        "not run",
        first["edit_errors"],
    )
    tester = Step.objects.get(run=run, key="task:edit_ops:tester:1")
    assert (tester.llm_calls, tester.tokens_in) == (0, 0)
    assert f"Fixed: {reason}" in output(run, "task:edit_ops:coder:2")["notes"]
    assert ADD_ALL in tree_of(run)[OPS].decode()
