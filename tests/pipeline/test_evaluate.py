"""Evaluation: suites with hidden tests, their sandboxed run, figures, manage.py evaluate."""

import io
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.core.management import CommandError, call_command

from pipeline.evaluation import (
    CaseResult,
    ChainResult,
    HiddenResult,
    SuiteInvalid,
    hidden_tests_run,
    suite_load,
)
from pipeline.models import Run
from tests.pipeline.offline_trees import build

SHOPPING = (
    "Shopping list: a Python package `shopping_list`. `shopping_list.core.parse_items(text)` "
    "splits text on commas and newlines into trimmed, non-empty items; "
    "`shopping_list.core.summarize(items)` counts them case-insensitively."
)
PASSING = """from shopping_list.core import parse_items, summarize


def test_items_are_split_and_trimmed():
    assert parse_items("milk, eggs") == ["milk", "eggs"]


def test_items_are_counted_case_insensitively():
    assert summarize(["Milk", "milk"]) == {"milk": 2}
"""
FAILING = """from shopping_list.core import top_items


def test_the_most_frequent_items_come_first():
    assert top_items({"a": 1, "b": 2}, 1) == ["b"]
"""


def write_case(suite: Path, name: str, prompt: str, hidden: dict[str, str]) -> None:
    (suite / name / "hidden").mkdir(parents=True, exist_ok=True)
    (suite / name / "prompt.md").write_text(prompt)
    for file_name, source in hidden.items():
        (suite / name / "hidden" / file_name).write_text(source)


# --- suites --------------------------------------------------------------------------------


def test_the_shipped_suite_has_eight_cases_each_with_a_prompt_and_hidden_tests() -> None:
    suite = suite_load(ref="basic")

    assert suite.path == Path(settings.BASE_DIR) / "evaluation" / "basic"
    assert [(case.name, case.hidden_count) for case in suite.cases] == [
        ("csv_totals", 3),
        ("inventory_cli", 4),
        ("shopping_list", 4),
        ("slug_maker", 2),
        ("tag_counter", 3),
        ("temperature_converter", 2),
        ("todo_store", 4),
        ("word_frequency", 3),
    ]


def test_a_prompt_that_names_a_hidden_test_is_refused(tmp_path: Path) -> None:
    write_case(tmp_path, "leaky", SHOPPING + " test_items_are_split_and_trimmed", {
        "test_hidden.py": PASSING
    })  # fmt: skip

    with pytest.raises(SuiteInvalid, match="names hidden tests"):
        suite_load(ref=str(tmp_path))


@pytest.mark.parametrize(
    ("prompt", "hidden", "message"),
    [
        ("", {"test_hidden.py": PASSING}, "prompt.md is empty"),
        (SHOPPING, {}, "defines no test_"),
        (SHOPPING, {"helpers.py": PASSING}, "is not test_"),
    ],
)
def test_a_malformed_case_is_refused(
    tmp_path: Path, prompt: str, hidden: dict[str, str], message: str
) -> None:
    write_case(tmp_path, "case", prompt, hidden)

    with pytest.raises(SuiteInvalid, match=message):
        suite_load(ref=str(tmp_path))


def test_an_unknown_suite_is_refused() -> None:
    with pytest.raises(SuiteInvalid, match="No suite"):
        suite_load(ref="no-such-suite")


# --- hidden tests in the sandbox ---------------------------------------------------------


@pytest.fixture(autouse=True)
def _media(tmp_path: Path, settings: Any) -> None:
    settings.MEDIA_ROOT = str(tmp_path / "media")


def shipped(name: str) -> Any:
    return suite_load(ref="basic", only=[name]).cases[0]


@pytest.mark.slow
def test_hidden_tests_the_offline_build_satisfies_pass() -> None:
    case = shipped("shopping_list")
    tree, _ = build(case.prompt)

    result = hidden_tests_run(tree=dict(tree), case=case)

    assert (result.passed, result.failed, result.errors, result.total) == (4, 0, 0, 4)


@pytest.mark.slow
def test_a_hidden_test_of_a_function_not_built_fails_and_names_itself() -> None:
    case = shipped("tag_counter")
    tree, _ = build(case.prompt)

    result = hidden_tests_run(tree=dict(tree), case=case)

    assert (result.passed, result.failed, result.total) == (2, 1, 3)
    assert [t["nodeid"] for t in result.tests if t["outcome"] == "failed"] == [
        "test_hidden_tag_counter.py::test_top_items_ranks_by_count_then_alphabetically"
    ]


@pytest.mark.slow
def test_hidden_tests_that_cannot_import_count_as_not_passed() -> None:
    case = shipped("csv_totals")
    tree, _ = build(case.prompt)

    result = hidden_tests_run(tree=dict(tree), case=case)

    assert (result.passed, result.errors, result.total) == (0, 1, 3)


@pytest.mark.slow
def test_a_hidden_file_that_cannot_import_does_not_stop_the_others(tmp_path: Path) -> None:
    write_case(
        tmp_path, "shopping", SHOPPING,
        {"test_hidden_parse.py": PASSING, "test_hidden_top.py": FAILING},
    )  # fmt: skip
    case = suite_load(ref=str(tmp_path)).cases[0]
    tree, _ = build(case.prompt)

    result = hidden_tests_run(tree=dict(tree), case=case)

    assert (result.passed, result.errors, result.total) == (2, 1, 3)


@pytest.mark.slow
def test_the_generated_conftest_cannot_turn_failing_hidden_tests_green() -> None:
    case = shipped("tag_counter")
    tree, _ = build(case.prompt)
    cheat = (
        "import pytest\n\n\n@pytest.hookimpl(hookwrapper=True)\n"
        "def pytest_runtest_makereport(item, call):\n"
        "    outcome = yield\n    report = outcome.get_result()\n"
        "    report.outcome = 'passed'\n"
    )
    tree["conftest.py"] = cheat
    tree["aiflow_hidden_tests/conftest.py"] = cheat

    result = hidden_tests_run(tree=dict(tree), case=case)

    assert (result.passed, result.failed) == (2, 1)


# --- figures ------------------------------------------------------------------------------


def test_chain_figures_count_every_hidden_test_of_a_run_that_did_not_complete() -> None:
    chain = ChainResult(
        chain=["offline:offline"],
        cases=[
            CaseResult(
                case="a",
                run_id=1,
                status="completed",
                wall_seconds=10.0,
                tokens_in=100,
                tokens_out=50,
                cost_usd=Decimal("0.03"),
                hidden_total=4,
                hidden=HiddenResult(passed=3, failed=1, errors=0, total=4, mode="bubblewrap"),
            ),
            CaseResult(
                case="b",
                run_id=2,
                status="failed",
                wall_seconds=20.0,
                tokens_in=200,
                tokens_out=50,
                cost_usd=Decimal("0.01"),
                hidden_total=4,
            ),
        ],
    )

    assert chain.figures() == {
        "runs": 2,
        "completed": 1,
        "hidden_passed": 3,
        "hidden_total": 8,
        "executability": 0.375,
        "mean_wall_seconds": 15.0,
        "mean_tokens": 200.0,
        "mean_cost_usd": Decimal("0.020000"),
    }


# --- the command, on the real stack ------------------------------------------------------


def evaluate(suite: Path, output: Path, email: str, *chains: str) -> tuple[str, dict]:
    out = io.StringIO()
    call_command(
        "evaluate",
        str(suite),
        "--chains",
        *chains,
        "--user",
        email,
        "--output",
        str(output),
        "--poll",
        "0.2",
        "--timeout",
        "600",
        stdout=out,
    )
    written = sorted(output.glob("*.json"))[-1]
    return out.getvalue(), json.loads(written.read_text())


@pytest.mark.slow
@pytest.mark.e2e
@pytest.mark.django_db(transaction=True)
def test_a_failing_hidden_test_makes_the_executability_figure_drop(
    celery_worker: Any, user: Any, tmp_path: Path, no_sandbox: None
) -> None:
    suite = tmp_path / "tiny"
    write_case(suite, "shopping", SHOPPING, {"test_hidden_parse.py": PASSING})

    printed, before = evaluate(suite, tmp_path / "before", user.email, "offline:offline")
    (suite / "shopping" / "hidden" / "test_hidden_top.py").write_text(FAILING)
    _, after = evaluate(suite, tmp_path / "after", user.email, "offline:offline")

    figures = [result["chains"][0]["figures"] for result in (before, after)]
    assert [(f["completed"], f["hidden_passed"], f["hidden_total"]) for f in figures] == [
        (1, 2, 2),
        (1, 2, 3),
    ]
    assert [f["executability"] for f in figures] == [1.0, 0.6667]
    assert Run.objects.filter(project__name="evaluation tiny/shopping").count() == 2
    assert "offline test double" in printed
    assert "hidden tests passed 2/2 (executability 100.0%)" in printed
    assert len(list((tmp_path / "after").glob("*.md"))) == 1


@pytest.mark.django_db
def test_the_command_refuses_a_chain_of_an_unconfigured_provider(user: Any) -> None:
    with pytest.raises(CommandError, match="not configured"):
        call_command(
            "evaluate", "basic", "--chains", "nowhere:model", "--user", user.email,
            stdout=io.StringIO(),
        )  # fmt: skip


@pytest.mark.django_db
def test_the_command_needs_a_user_when_there_is_no_single_superuser() -> None:
    with pytest.raises(CommandError, match="--user"):
        call_command("evaluate", "basic", "--chains", "offline:offline", stdout=io.StringIO())
