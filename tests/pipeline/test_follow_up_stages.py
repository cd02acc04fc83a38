"""The stages in a follow-up run: what the architect, planner and coders see of the base tree,
how integration merges the tasks' changes into it, and what a tester's report keeps."""

from typing import Any

import pytest

from pipeline.models import PlanTask, Run, Step
from pipeline.services.stages import find_conflicts
from pipeline.services.stages.checks import _report_brief
from pipeline.services.stages.coding import coder_context
from pipeline.services.stages.common import base_files, base_tree, tree_apply
from projects.artifacts import artifact_store_tree

pytestmark = pytest.mark.django_db

CORE = "def parse(text: str) -> list[str]:\n    return text.split()\n"
TESTS = "from pkg.core import parse\n\n\ndef test_parse():\n    assert parse('a b') == ['a', 'b']\n"
CLI = "def main() -> int:\n    return 0\n"


@pytest.fixture(autouse=True)
def _media(tmp_path: Any, settings: Any) -> None:
    settings.MEDIA_ROOT = str(tmp_path / "media")


@pytest.fixture
def base(project: Any) -> Run:
    """A completed run with a tree of four files and a green integration suite."""
    run = Run.objects.create(project=project, prompt="A parser", status=Run.Status.COMPLETED)
    artifact_store_tree(
        run=run,
        files={
            "pkg/core.py": CORE,
            "pkg/cli.py": CLI,
            "tests/test_core.py": TESTS,
            "logo.png": b"\x89PNG\x00\x01",
        },
    )
    report = {"passed": True, "mode": "bubblewrap", "summary": "1 passed", "failures": []}
    Step.objects.create(
        run=run,
        key="integrate:suite:1",
        role="tester",
        attempt=1,
        status=Step.Status.SUCCEEDED,
        output={"mode": "sandbox", "report": report, "passed": True},
    )
    return run


@pytest.fixture
def follow_up(base: Run) -> Run:
    return Run.objects.create(project=base.project, prompt="Add a report", base_run=base)


def test_a_follow_up_starts_from_its_base_runs_text_files(follow_up: Run) -> None:
    assert base_files(follow_up) == {
        "pkg/core.py": CORE,
        "pkg/cli.py": CLI,
        "tests/test_core.py": TESTS,
    }


def test_the_architect_and_planner_of_a_follow_up_see_the_base_trees_summary(
    follow_up: Run,
) -> None:
    summary = base_tree(follow_up)

    assert summary["files"] == [
        {"path": "pkg/cli.py", "lines": 2},
        {"path": "pkg/core.py", "lines": 2},
        {"path": "tests/test_core.py", "lines": 5},
    ]
    assert summary["interfaces"] == {
        "pkg/cli.py": ["def main() -> int"],
        "pkg/core.py": ["def parse(text: str) -> list[str]"],
    }
    assert summary["tests"] == {"tests/test_core.py": ["test_parse"]}
    assert (summary["last_report"]["passed"], summary["last_report"]["summary"]) == (
        True,
        "1 passed",
    )


def test_a_fresh_run_has_no_base(project: Any) -> None:
    run = Run.objects.create(project=project, prompt="A parser")

    assert (base_files(run), base_tree(run)) == ({}, None)


def test_a_coder_of_a_follow_up_gets_the_current_content_of_its_existing_files(
    follow_up: Run,
) -> None:
    task = PlanTask.objects.create(
        run=follow_up,
        key="edit_core",
        title="Edit core",
        files=["pkg/core.py", "tests/test_core.py", "pkg/report.py"],
    )

    context = coder_context(run=follow_up, task=task, step_key="task:edit_core:coder:1", attempt=1)

    assert context["base_files"] == {"pkg/core.py": CORE, "tests/test_core.py": TESTS}


def test_a_coder_adding_only_new_files_still_knows_it_changes_a_tree(follow_up: Run) -> None:
    task = PlanTask.objects.create(
        run=follow_up, key="report", title="Report", files=["pkg/report.py"]
    )

    context = coder_context(run=follow_up, task=task, step_key="task:report:coder:1", attempt=1)

    assert context["base_files"] == {}


def test_a_coder_of_a_fresh_run_gets_no_base_files(project: Any) -> None:
    run = Run.objects.create(project=project, prompt="A parser")
    task = PlanTask.objects.create(run=run, key="core", title="Core", files=["pkg/core.py"])

    context = coder_context(run=run, task=task, step_key="task:core:coder:1", attempt=1)

    assert "base_files" not in context


def done(key: str, files: dict[str, str], deleted: list[str] | None = None) -> PlanTask:
    return PlanTask(
        key=key, title=key, files=list(files), result={"files": files, "deleted": deleted or []}
    )


def test_integration_merges_the_tasks_changes_into_the_full_base_tree() -> None:
    base = {"pkg/core.py": CORE, "pkg/cli.py": CLI, "tests/test_cli.py": "x\n", "README.md": "#\n"}
    edit = done("edit", {"pkg/core.py": CORE + "\n\ndef top() -> None:\n    pass\n"})
    add = done("report", {"pkg/report.py": "def render() -> str:\n    return ''\n"})
    remove = done("remove_cli", {}, deleted=["pkg/cli.py", "tests/test_cli.py"])

    tree, conflicts = find_conflicts([edit, add, remove], {}, base=base)

    assert conflicts == []
    assert tree == {
        "pkg/core.py": CORE + "\n\ndef top() -> None:\n    pass\n",
        "README.md": "#\n",
        "pkg/report.py": "def render() -> str:\n    return ''\n",
    }


def test_a_file_one_task_writes_stays_when_another_deletes_it() -> None:
    writer = done("writer", {"pkg/cli.py": "def main() -> int:\n    return 1\n"})
    remover = done("remover", {}, deleted=["pkg/cli.py"])

    tree, _ = find_conflicts([remover, writer], {}, base={"pkg/cli.py": CLI})

    assert tree == {"pkg/cli.py": "def main() -> int:\n    return 1\n"}


def test_an_interface_the_base_tree_defines_is_no_conflict() -> None:
    design = {"interfaces": [{"path": "pkg/core.py", "name": "parse", "signature": "def parse"}]}
    report = done("report", {"pkg/report.py": "def render() -> str:\n    return ''\n"})

    assert find_conflicts([report], design, base={"pkg/core.py": CORE})[1] == []


def test_a_tree_with_changes_applied_drops_the_deleted_and_writes_the_rest() -> None:
    tree = tree_apply({"a": "1", "b": "2"}, files={"b": "3", "c": "4"}, deleted=["a"])

    assert tree == {"b": "3", "c": "4"}


def test_a_testers_report_keeps_numeric_counts_and_the_tests_that_ran() -> None:
    report = {
        "passed": False,
        "mode": "bubblewrap",
        "tests": {
            "passed": 3,
            "failed": 1,
            "errors": 0,
            "failing": [{"nodeid": "tests/test_a.py::test_b", "message": "assert 1 == 2"}],
            "ran": [
                {"nodeid": "tests/test_a.py::test_a", "outcome": "passed"},
                {"nodeid": "tests/test_a.py::test_b", "outcome": "failed"},
            ],
        },
        "lint": [],
        "security": [],
        "output": "",
    }

    brief = _report_brief(report)

    assert (brief["tests"], brief["test_ids"], brief["failures"]) == (
        {"passed": 3, "failed": 1, "errors": 0},
        ["tests/test_a.py::test_a", "tests/test_a.py::test_b"],
        ["tests/test_a.py::test_b: assert 1 == 2"],
    )
    assert brief["summary"].startswith("3 passed, 1 failed, 0 errors")
