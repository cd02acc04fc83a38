"""A follow-up run on the real stack: a real Celery worker, the offline model (a labelled test
double), the tests in the sandbox. It changes its base run's tree, and its whole suite runs."""

from typing import Any

import pytest

from pipeline.models import PlanTask, Run, Step
from tests.pipeline.conftest import wait_for_run

pytestmark = [pytest.mark.slow, pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

PROMPT = "A shopping list manager"
# The offline package's five tests, and the two a follow-up adds.
BASE_TESTS = {
    "tests/test_cli.py::test_main_adds_items_and_prints_the_summary",
    "tests/test_core.py::test_parse_items_splits_on_commas_and_newlines",
    "tests/test_core.py::test_summarize_counts_case_insensitively",
    "tests/test_storage.py::test_missing_file_loads_as_no_items",
    "tests/test_storage.py::test_saved_items_load_back",
}
EDIT_TEST = "tests/test_core.py::test_top_items_ranks_by_count_then_by_name"
REPORT_TEST = "tests/test_report.py::test_render_report_lists_the_most_frequent_first"


@pytest.fixture(autouse=True)
def _media(tmp_path: Any, settings: Any) -> None:
    settings.MEDIA_ROOT = str(tmp_path / "media")


def generate(client: Any, project: Any, prompt: str, **body: Any) -> Run:
    response = client.post(
        f"/projects/{project.id}/generate", {"prompt": prompt, **body}, format="json"
    )
    assert response.status_code == 202, response.json()
    run = wait_for_run(response.json()["run_id"], timeout=300)
    assert (run.status, run.error) == (Run.Status.COMPLETED, "")
    return run


def last_suite(run: Run) -> dict[str, Any]:
    """The output of the run's last integration suite: ``{mode, report, passed}``."""
    suite = Step.objects.filter(run=run, key__startswith="integrate:suite:").order_by("-attempt")
    return suite.first().output


def report_of_task(run: Run, task: str) -> dict[str, Any]:
    result = PlanTask.objects.get(run=run, key=task).result
    return result["verdict"]["report"]


def test_a_follow_up_changes_a_file_adds_one_and_runs_the_whole_suite_of_the_new_tree(
    celery_worker: Any, api_client: Any, project: Any
) -> None:
    base = generate(api_client, project, PROMPT, base_run=None)

    follow_up = generate(api_client, project, "Add a report")

    diff = api_client.get(f"/projects/{project.id}/diff?from={base.id}&to={follow_up.id}").json()
    detail = api_client.get(f"/runs/{follow_up.id}").json()
    suite = last_suite(follow_up)
    assert follow_up.base_run_id == base.id
    assert follow_up.design["summary"].startswith(
        "A change to the existing package 'shopping_list'"
    )
    assert (diff["changed"], diff["added"], diff["removed"]) == (
        ["shopping_list/core.py", "tests/test_core.py"],
        ["shopping_list/report.py", "tests/test_report.py"],
        [],
    )
    assert {key: detail["base_changes"][key] for key in ("added", "changed", "removed")} == {
        "added": diff["added"],
        "changed": diff["changed"],
        "removed": [],
    }
    assert (
        "+def top_items(counts: dict[str, int], n: int = 3)"
        in (diff["diffs"]["shopping_list/core.py"])
    )
    # The integration suite ran every test of the new tree: the base's and the new ones.
    assert (suite["passed"], suite["mode"], suite["report"]["tests"]) == (
        True,
        "sandbox",
        {"passed": 7, "failed": 0, "errors": 0},
    )
    assert set(suite["report"]["test_ids"]) == BASE_TESTS | {EDIT_TEST, REPORT_TEST}
    # Each tester ran its task's files on top of the base tree (and its dependencies').
    assert set(report_of_task(follow_up, "edit_core")["test_ids"]) == BASE_TESTS | {EDIT_TEST}
    assert set(report_of_task(follow_up, "report")["test_ids"]) == (
        BASE_TESTS | {EDIT_TEST, REPORT_TEST}
    )


def test_compare_reports_the_tests_each_run_passed_and_a_follow_ups_changes(
    celery_worker: Any, api_client: Any, project: Any
) -> None:
    base = generate(api_client, project, PROMPT, base_run=None)
    follow_up = generate(api_client, project, "Add a report")

    body = api_client.get(f"/projects/{project.id}/compare?runs={base.id},{follow_up.id}").json()

    figures = {run["id"]: run for run in body["runs"]}
    assert [(figures[r.id]["base_run"], figures[r.id]["tests"]) for r in (base, follow_up)] == [
        (None, {"suite": "integration", "mode": "sandbox", "passed": 5, "failed": 0, "errors": 0}),
        (
            base.id,
            {"suite": "integration", "mode": "sandbox", "passed": 7, "failed": 0, "errors": 0},
        ),
    ]
    assert figures[follow_up.id]["lines"]["files"] == figures[base.id]["lines"]["files"] + 2
    assert (body["diff"]["changed"], body["diff"]["added"], body["diff"]["removed"]) == (
        ["shopping_list/core.py", "tests/test_core.py"],
        ["shopping_list/report.py", "tests/test_report.py"],
        [],
    )


def test_a_follow_up_that_removes_a_module_deletes_it_from_the_new_tree(
    celery_worker: Any, api_client: Any, project: Any
) -> None:
    base = generate(api_client, project, PROMPT, base_run=None)

    follow_up = generate(api_client, project, "Add a report and remove the cli", base_run=base.id)

    detail = api_client.get(f"/runs/{follow_up.id}").json()
    suite = last_suite(follow_up)["report"]
    coder = Step.objects.get(run=follow_up, key="task:remove_cli:coder:1")
    assert coder.output["deleted"] == ["shopping_list/cli.py", "tests/test_cli.py"]
    assert detail["base_changes"]["removed"] == ["shopping_list/cli.py", "tests/test_cli.py"]
    assert set(suite["test_ids"]) == (
        BASE_TESTS - {"tests/test_cli.py::test_main_adds_items_and_prints_the_summary"}
    ) | {EDIT_TEST, REPORT_TEST}
