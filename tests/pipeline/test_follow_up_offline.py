"""The offline model (a labelled test double) in follow-up runs, and the coder's deletions."""

import pytest
from pydantic import ValidationError

from pipeline import context as ctx
from pipeline.roles import CODER, CoderFiles
from tests.pipeline.offline_trees import ask, build, plan

PROMPT = "A shopping list manager"


@pytest.fixture
def base() -> dict[str, str]:
    return build(PROMPT)[0]


def test_a_fresh_run_is_planned_as_before(base: dict[str, str]) -> None:
    assert sorted(base) == [
        "conftest.py",
        "shopping_list/__init__.py",
        "shopping_list/cli.py",
        "shopping_list/core.py",
        "shopping_list/storage.py",
        "tests/test_cli.py",
        "tests/test_core.py",
        "tests/test_storage.py",
    ]


def test_a_follow_up_plans_an_edit_of_an_existing_module_and_a_new_module(
    base: dict[str, str],
) -> None:
    design, tasks = plan("Add a report", {"base_tree": ctx.base_tree_summary(base)})

    assert design["package"] == "shopping_list"
    assert [(t["key"], t["files"], t["depends_on"]) for t in tasks] == [
        ("edit_core", ["shopping_list/core.py", "tests/test_core.py"], []),
        ("report", ["shopping_list/report.py", "tests/test_report.py"], ["edit_core"]),
    ]
    assert [(i["path"], i["name"]) for i in design["interfaces"]] == [
        ("shopping_list/core.py", "parse_items"),
        ("shopping_list/core.py", "summarize"),
        ("shopping_list/core.py", "top_items"),
        ("shopping_list/report.py", "render_report"),
    ]


def test_the_coder_edits_existing_files_keeping_their_content_and_adds_new_ones(
    base: dict[str, str],
) -> None:
    tree, _ = build("Add a report", base)

    changed = sorted(path for path in base if tree[path] != base[path])
    added = sorted(set(tree) - set(base))
    assert (changed, added) == (
        ["shopping_list/core.py", "tests/test_core.py"],
        ["shopping_list/report.py", "tests/test_report.py"],
    )
    assert tree["shopping_list/core.py"].startswith(base["shopping_list/core.py"].rstrip("\n"))
    assert "def top_items(counts: dict[str, int], n: int = 3)" in tree["shopping_list/core.py"]
    assert "from shopping_list.core import top_items" in tree["shopping_list/report.py"]
    assert "def test_summarize_counts_case_insensitively" in tree["tests/test_core.py"]


def test_asking_to_remove_a_module_deletes_it_and_its_tests(base: dict[str, str]) -> None:
    tree, answered = build("Add a report and remove the cli", base)

    assert answered["remove_cli"] == {
        "files": [],
        "edits": [],
        "deleted": ["shopping_list/cli.py", "tests/test_cli.py"],
        "notes": "Attempt 1 of task remove_cli (a change).",
    }
    assert sorted(set(base) - set(tree)) == ["shopping_list/cli.py", "tests/test_cli.py"]


def test_a_follow_up_of_a_follow_up_adds_the_next_function_and_module(
    base: dict[str, str],
) -> None:
    first, _ = build("Add a report", base)

    second, _ = build("Add another report", first)

    assert sorted(set(second) - set(first)) == [
        "shopping_list/report_2.py",
        "tests/test_report_2.py",
    ]
    assert "def unique_items(" in second["shopping_list/core.py"]
    assert second["shopping_list/core.py"].count("def top_items(") == 1


def test_without_a_base_tree_the_coder_answers_as_in_a_fresh_run(base: dict[str, str]) -> None:
    design, tasks = plan(PROMPT, {})
    core = next(task for task in tasks if task["key"] == "core")

    files = ask(CODER, {"kind": "code", "prompt": PROMPT, "task": core, "design": design})

    assert files["deleted"] == []
    assert {item["path"]: item["content"] for item in files["files"]}["shopping_list/core.py"] == (
        base["shopping_list/core.py"]
    )


@pytest.mark.slow
def test_the_changed_tree_passes_its_whole_suite_in_the_sandbox(base: dict[str, str]) -> None:
    from projects.checks import run_test_checks

    tree, _ = build("Add a report and remove the cli", base)

    report = run_test_checks(files=tree)

    assert (report.passed, report.tests["passed"], report.tests["failed"]) == (True, 6, 0)


# --- the coder's schema ------------------------------------------------------------------------


def test_a_coder_may_only_delete_files() -> None:
    answer = CoderFiles.model_validate({"deleted": ["pkg/old.py"]})

    assert (answer.files, answer.deleted) == ([], ["pkg/old.py"])


def test_a_coder_answer_that_neither_writes_nor_deletes_is_invalid() -> None:
    with pytest.raises(ValidationError, match="write, edit or delete at least one file"):
        CoderFiles.model_validate({"files": [], "notes": "nothing"})


def test_a_path_cannot_be_written_and_deleted_at_once() -> None:
    with pytest.raises(ValidationError, match="either written or deleted"):
        CoderFiles.model_validate(
            {"files": [{"path": "pkg/a.py", "content": "x = 1\n"}], "deleted": ["pkg/a.py"]}
        )
