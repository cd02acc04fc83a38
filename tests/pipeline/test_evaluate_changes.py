"""The change-task suite: small repositories shipped with their own passing tests, each with a
prompt and hidden tests; manage.py evaluate imports each, runs the change, and reports hidden
tests passed, baseline tests broken, lines changed and cost."""

import io
import json
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command

from pipeline.baseline import baseline_run
from pipeline.evaluation import suite_load
from pipeline.evaluation.changes import archive_of, lines_changed
from pipeline.models import Run
from projects.artifacts import artifact_store_tree
from repositories.archive import import_archive

CASES = ["calc_bulk", "inventory_stock", "report_totals", "textkit_truncate", "units_kelvin"]


def test_the_change_suite_ships_five_repositories_with_prompts_and_hidden_tests() -> None:
    suite = suite_load(ref="changes")

    assert [(case.name, case.hidden_count, case.is_change) for case in suite.cases] == [
        ("calc_bulk", 2, True),
        ("inventory_stock", 2, True),
        ("report_totals", 2, True),
        ("textkit_truncate", 3, True),
        ("units_kelvin", 3, True),
    ]
    for case in suite.cases:
        assert any(path.startswith("tests/test_") for path in case.repo), case.name
        assert not any(path.startswith(("hidden/", "prompt")) for path in case.repo)


def test_a_case_goes_in_as_an_archive_that_imports_to_its_repository() -> None:
    case = suite_load(ref="changes", only=["report_totals"]).cases[0]

    tree = import_archive(io.BytesIO(archive_of(case)))

    assert tree.files == case.repo
    assert tree.binary == {"docs/logo.png"}
    assert archive_of(case) == archive_of(case)


@pytest.mark.slow
@pytest.mark.parametrize("name", CASES)
def test_each_repository_passes_its_own_tests_in_the_sandbox(name: str) -> None:
    case = suite_load(ref="changes", only=[name]).cases[0]
    files = {
        path: data if path.endswith(".png") else data.decode() for path, data in case.repo.items()
    }

    baseline = baseline_run(files)

    assert (baseline["status"], baseline["command"]) == ("passed", "python -m pytest")
    assert baseline["counts"]["failed"] == baseline["counts"]["errors"] == 0
    assert baseline["counts"]["passed"] >= 2


@pytest.mark.django_db
def test_lines_changed_counts_lines_added_and_removed_over_text_files(
    project: Any, settings: Any, tmp_path: Path
) -> None:
    settings.MEDIA_ROOT = str(tmp_path / "media")
    before = Run.objects.create(project=project, kind="import", prompt="i", status="completed")
    after = Run.objects.create(project=project, prompt="c", status="completed", base_run=before)
    artifact_store_tree(
        run=before, files={"a.py": "x = 1\ny = 2\n", "gone.txt": "bye\n", "b.bin": b"\x00\x01"}
    )
    artifact_store_tree(
        run=after, files={"a.py": "x = 1\ny = 3\nz = 4\n", "new.txt": "hi\nthere\n", "b.bin": b"\0"}
    )

    # a.py: -1 +2; gone.txt: -1; new.txt: +2; the binary file is not counted.
    assert lines_changed(before=before, after=after) == 6


@pytest.mark.slow
@pytest.mark.e2e
@pytest.mark.django_db(transaction=True)
def test_evaluate_imports_each_case_runs_its_change_and_reports_the_figures(
    celery_worker: Any, user: Any, tmp_path: Path, settings: Any
) -> None:
    settings.MEDIA_ROOT = str(tmp_path / "media")
    out = io.StringIO()

    call_command(
        "evaluate",
        "changes",
        "--case",
        "calc_bulk",
        "--case",
        "textkit_truncate",
        "--chains",
        "offline:offline",
        "--user",
        user.email,
        "--output",
        str(tmp_path / "out"),
        "--poll",
        "0.2",
        "--timeout",
        "600",
        stdout=out,
    )

    result = json.loads(sorted((tmp_path / "out").glob("*.json"))[-1].read_text())
    cases = {case["case"]: case for case in result["chains"][0]["cases"]}
    assert {
        name: (c["status"], c["hidden_passed"], c["hidden_total"]) for name, c in cases.items()
    } == {
        "calc_bulk": ("completed", 2, 2),
        "textkit_truncate": ("completed", 0, 3),
    }
    assert {name: (c["regressions"], c["baseline_passed"]) for name, c in cases.items()} == {
        "calc_bulk": ([], 3),
        "textkit_truncate": ([], 2),
    }
    # The offline change: one function (5 lines with the blank ones) and a test module (10
    # lines with a test on sample arguments of a numeric signature, else 5).
    assert {name: c["lines_changed"] for name, c in cases.items()} == {
        "calc_bulk": 15,
        "textkit_truncate": 10,
    }
    imports = Run.objects.filter(kind="import", project__name__startswith="evaluation changes/")
    assert sorted(imports.values_list("status", flat=True)) == ["completed", "completed"]
    printed = out.getvalue()
    assert "baseline tests broken 0/5" in printed
    assert "offline test double" in printed
