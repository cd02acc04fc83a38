"""The repository map: paths and sizes, Python's top-level symbols with signatures, binary
files named only; trimmed to its budget, cheapest loss first; given to the architect and the
planner of a run on an imported repository."""

from typing import Any

import pytest

from pipeline.context import size_of
from pipeline.models import BaselineTest, Run, RunImport
from pipeline.repomap import MapFile, repo_map
from pipeline.services.stages.design import _with_base_tree
from projects.artifacts import artifact_store_tree
from tests.pipeline.repo_fixtures import CALC_FILES, LOGO

MODULE = '''"""Shapes."""


class Shape(Base):
    def area(self) -> float:
        return 0.0

    def _hidden(self):
        pass


async def fetch(url: str, *, timeout: float = 1.0) -> bytes:
    return b""


def _private(x):
    return x
'''


def test_python_modules_show_top_level_symbols_with_signatures_and_others_their_names():
    files = [
        MapFile("pkg/shapes.py", len(MODULE), MODULE),
        MapFile("README.md", 12, "# a\n\nb\n"),
        MapFile("img/logo.png", 4096, None),
        MapFile("broken.py", 9, "def (:\n"),
    ]

    repo = repo_map(files, budget=10_000)

    assert repo == {
        "files": [
            {"path": "broken.py", "bytes": 9, "lines": 1, "note": "does not parse"},
            {
                "path": "pkg/shapes.py",
                "bytes": len(MODULE),
                "lines": 17,
                "symbols": [
                    "class Shape(Base)",
                    "    def area(self) -> float",
                    "    def _hidden(self)",
                    "async def fetch(url: str, *, timeout: float=1.0) -> bytes",
                    "def _private(x)",
                ],
            },
            {"path": "README.md", "bytes": 12, "lines": 3},
            {"path": "img/logo.png", "bytes": 4096, "binary": True},
        ],
        "total_files": 4,
        "omitted": {"files": 0, "symbols_of_files": 0},
    }


def test_a_map_over_its_budget_loses_methods_then_test_symbols_then_whole_symbol_lists():
    modules = [
        MapFile(
            f"pkg/m{i}.py", 100, f"class C{i}:\n    def method_{i}(self, a, b, c):\n        pass\n"
        )
        for i in range(30)
    ]
    tests = [MapFile(f"tests/test_m{i}.py", 50, f"def test_{i}():\n    pass\n") for i in range(30)]
    full = repo_map(modules + tests, budget=1_000_000)
    budget = size_of(full) - 2000

    repo = repo_map(modules + tests, budget=budget)

    assert size_of(repo) <= budget
    assert len(repo["files"]) == 60
    assert all(not line.startswith(" ") for f in repo["files"] for line in f.get("symbols", []))
    assert all("symbols" not in f for f in repo["files"] if f["path"].startswith("tests/"))


def test_a_map_far_over_its_budget_keeps_the_code_paths_and_counts_what_it_left_out():
    files = [MapFile(f"pkg/m{i:03}.py", 10, "def f(a):\n    pass\n") for i in range(200)]
    files += [MapFile(f"docs/page{i:03}.md", 10, "text\n") for i in range(200)]

    repo = repo_map(files, budget=3000)

    assert size_of(repo) <= 3000
    kept = [f["path"] for f in repo["files"]]
    assert kept == [f"pkg/m{i:03}.py" for i in range(len(kept))]
    assert repo["omitted"]["files"] == 400 - len(kept)
    assert repo["total_files"] == 400


@pytest.mark.django_db
def test_the_architect_and_planner_of_a_run_on_an_import_get_its_map_and_baseline(
    project: Any, settings: Any, tmp_path: Any
):
    settings.MEDIA_ROOT = str(tmp_path / "media")
    base = Run.objects.create(project=project, kind="import", prompt="Import", status="completed")
    artifact_store_tree(run=base, files=dict(CALC_FILES))
    RunImport.objects.create(
        run=base,
        source="git",
        url="https://git.example.org/calc.git",
        commit="a" * 40,
        baseline_status="failed",
        baseline_command="python -m pytest",
        baseline_counts={"passed": 1, "failed": 1, "errors": 0, "skipped": 0},
    )
    BaselineTest.objects.create(
        run=base, test_id="tests/test_ops.py::test_add_adds", outcome="passed"
    )
    BaselineTest.objects.create(run=base, test_id="tests/test_ops.py::test_mul", outcome="failed")
    run = Run.objects.create(project=project, prompt="Add subtraction", base_run=base)

    context = _with_base_tree(run, {"kind": "design"})

    assert "base_tree" not in context
    assert context["repository"] == {
        "origin": "import",
        "source": "https://git.example.org/calc.git",
        "commit": "a" * 40,
        "baseline": {
            "status": "failed",
            "command": "python -m pytest",
            "counts": {"passed": 1, "failed": 1, "errors": 0, "skipped": 0},
            "failing_before": ["tests/test_ops.py::test_mul"],
        },
    }
    by_path = {entry["path"]: entry for entry in context["repo_map"]["files"]}
    assert by_path["calc/ops.py"]["symbols"] == [
        "def add(a: int, b: int) -> int",
        "def mul(a: int, b: int) -> int",
    ]
    assert by_path["assets/logo.png"] == {
        "path": "assets/logo.png",
        "bytes": len(LOGO),
        "binary": True,
    }
    assert "\\x89PNG" not in str(context) and "PNG" not in str(context)
