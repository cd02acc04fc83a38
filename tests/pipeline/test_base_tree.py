"""The base tree summary a follow-up run's architect and planner see (pipeline.context)."""

import json
from typing import Any

import pytest

from pipeline import context
from pipeline.models import Run, Step
from pipeline.selectors import run_base_tree
from projects.artifacts import artifact_store_tree

CORE = '''"""Core."""
import json


def parse(text: str, *, sep: str = ",") -> list[str]:
    return text.split(sep)


async def fetch(url: str) -> bytes:
    return b""


def _helper() -> None:
    pass


class Store(Base):
    def __init__(self, path: str) -> None:
        self.path = path

    def save(self, items: list[str]) -> None:
        pass

    def _flush(self) -> None:
        pass


class _Private:
    pass
'''

TESTS = """from pkg.core import parse


def test_parse_splits():
    assert parse("a,b") == ["a", "b"]


def helper():
    pass


class TestStore:
    def test_saves(self):
        pass

    def setup_method(self):
        pass
"""

REPORT = {
    "suite": "integration",
    "mode": "sandbox",
    "passed": False,
    "summary": "1 passed, 1 failed, 0 errors; 0 lint and 0 security findings",
    "failures": ["tests/test_core.py::test_x: assert 1 == 2"],
}


def tree() -> dict[str, str]:
    return {
        "pkg/__init__.py": "",
        "pkg/core.py": CORE,
        "tests/test_core.py": TESTS,
        "README.md": "# pkg\n\nA package.\n",
    }


def test_the_summary_lists_every_file_with_its_line_count() -> None:
    summary = context.base_tree_summary(tree(), budget=10_000)

    assert summary["files"] == [
        {"path": "README.md", "lines": 3},
        {"path": "pkg/__init__.py", "lines": 0},
        {"path": "pkg/core.py", "lines": CORE.count("\n")},
        {"path": "tests/test_core.py", "lines": TESTS.count("\n")},
    ]


def test_public_interfaces_are_signatures_with_annotations_and_no_private_names() -> None:
    summary = context.base_tree_summary(tree(), budget=10_000)

    assert summary["interfaces"] == {
        "pkg/core.py": [
            "def parse(text: str, *, sep: str=',') -> list[str]",
            "async def fetch(url: str) -> bytes",
            "class Store(Base)",
            "    def __init__(self, path: str) -> None",
            "    def save(self, items: list[str]) -> None",
        ]
    }


def test_test_modules_contribute_their_test_names_not_interfaces() -> None:
    summary = context.base_tree_summary(tree(), budget=10_000)

    assert summary["tests"] == {
        "tests/test_core.py": ["test_parse_splits", "TestStore::test_saves"]
    }


def test_the_last_test_report_is_carried_with_its_failures() -> None:
    summary = context.base_tree_summary(tree(), last_report=REPORT, budget=10_000)

    assert summary["last_report"] == REPORT


def test_a_module_that_does_not_parse_still_shows_its_def_lines() -> None:
    broken = {"pkg/core.py": "def ok(x):\n    return (\n\nclass Thing:\n"}

    summary = context.base_tree_summary(broken, budget=10_000)

    assert summary["interfaces"] == {"pkg/core.py": ["def ok(x):", "class Thing:"]}


def test_a_small_tree_is_summarised_whole() -> None:
    summary = context.base_tree_summary(tree(), last_report=REPORT, budget=10_000)

    assert summary["omitted"] == {"interfaces_of_modules": 0, "file_paths": 0}


def big_tree(modules: int) -> dict[str, str]:
    files: dict[str, str] = {}
    for index in range(modules):
        functions = "".join(
            f"def function_{index}_{n}(value: int, other: str = 'x') -> int:\n    return 1\n\n"
            for n in range(30)
        )
        files[f"pkg/module_{index}.py"] = functions
        files[f"tests/test_module_{index}.py"] = "".join(
            f"def test_case_{index}_{n}():\n    pass\n" for n in range(30)
        )
    return files


def test_a_big_tree_shrinks_to_the_budget_keeping_every_path() -> None:
    files = big_tree(40)

    summary = context.base_tree_summary(files, last_report=REPORT, budget=8_000)

    assert len(json.dumps(summary)) <= 8_000
    assert [entry["path"] for entry in summary["files"]] == sorted(files)
    assert summary["omitted"]["interfaces_of_modules"] > 0
    assert summary["tests"] == {"(all test modules)": 40 * 30}


def test_test_names_shrink_to_counts_before_any_interface_is_dropped() -> None:
    files = big_tree(4)
    whole = context.base_tree_summary(files, budget=1_000_000)
    names_size = len(json.dumps(whole["tests"]))
    counts_size = len(json.dumps({path: 30 for path in whole["tests"]}))

    summary = context.base_tree_summary(
        files, budget=len(json.dumps(whole)) - names_size + counts_size
    )

    assert summary["tests"] == {f"tests/test_module_{i}.py": 30 for i in range(4)}
    assert summary["interfaces"] == whole["interfaces"]


def test_a_huge_tree_keeps_a_prefix_of_its_paths_and_counts_the_rest() -> None:
    files = {f"pkg/sub/file_{index:05}.txt": "x\n" for index in range(5_000)}

    summary = context.base_tree_summary(files, budget=4_000)

    assert len(json.dumps(summary)) <= 4_000
    assert summary["files"] == sorted(files)[: len(summary["files"])]
    assert summary["omitted"]["file_paths"] == 5_000 - len(summary["files"])


def test_by_default_the_summary_takes_half_the_context_budget(settings: Any) -> None:
    settings.PIPELINE_CONTEXT_BUDGET_TOKENS = 1_000

    summary = context.base_tree_summary(big_tree(40))

    assert len(json.dumps(summary)) <= 1_000 * context.CHARS_PER_TOKEN // 2


@pytest.mark.django_db
def test_a_base_run_gives_its_text_tree_and_its_last_integration_report(
    project: Any, tmp_path: Any, settings: Any
) -> None:
    settings.MEDIA_ROOT = str(tmp_path)
    run = Run.objects.create(project=project, prompt="p", status=Run.Status.COMPLETED)
    artifact_store_tree(run=run, files={"pkg/core.py": CORE, "logo.png": b"\x89PNG\x00"})
    for number, summary in ((1, "1 passed, 1 failed, 0 errors"), (2, "2 passed, 0 failed")):
        Step.objects.create(
            run=run,
            role="tester",
            key=f"integrate:suite:{number}",
            attempt=number,
            status=Step.Status.SUCCEEDED,
            output={
                "mode": "sandbox",
                "passed": number == 2,
                "report": {"summary": summary, "failures": []},
            },
        )

    base = run_base_tree(run=run)

    assert base == {
        "files": {"pkg/core.py": CORE},
        "last_report": {
            "suite": "integration",
            "mode": "sandbox",
            "passed": True,
            "summary": "2 passed, 0 failed",
            "failures": [],
        },
    }
