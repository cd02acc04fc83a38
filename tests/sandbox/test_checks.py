"""The tester's checks run the tests, ruff and bandit in the sandbox and report a verdict."""

from pathlib import Path

import pytest

from projects.artifacts import InvalidArtifactPath
from projects.checks import run_test_checks
from projects.sandbox import MODE_BUBBLEWRAP
from projects.workspace import workspace_materialize, workspace_remove, workspace_root

CALC = "def add(a, b):\n    return a + b\n"
BROKEN_CALC = "def add(a, b):\n    return a - b\n"
TESTS = (
    "from calc import add\n\n\n"
    "def test_add():\n    assert add(1, 2) == 3\n\n\n"
    "def test_add_zero():\n    assert add(0, 0) == 0\n"
)
RISKY = (
    "import os\nimport subprocess\n\n\ndef run(cmd):\n    return subprocess.call(cmd, shell=True)\n"
)


def test_a_green_suite_passes() -> None:
    report = run_test_checks(files={"calc.py": CALC, "tests/test_calc.py": TESTS})

    assert (report.passed, report.tests["passed"], report.tests["failing"]) == (True, 2, [])


def test_the_report_says_it_ran_in_bubblewrap() -> None:
    report = run_test_checks(files={"calc.py": CALC, "tests/test_calc.py": TESTS})

    assert report.mode == MODE_BUBBLEWRAP


def test_a_red_suite_fails_and_names_the_failing_test() -> None:
    report = run_test_checks(files={"calc.py": BROKEN_CALC, "tests/test_calc.py": TESTS})

    assert report.passed is False
    assert [f["nodeid"] for f in report.tests["failing"]] == ["tests/test_calc.py::test_add"]


def test_the_failing_test_comes_with_its_assertion_message() -> None:
    report = run_test_checks(files={"calc.py": BROKEN_CALC, "tests/test_calc.py": TESTS})

    assert "assert -1 == 3" in report.tests["failing"][0]["message"]


def test_a_test_module_that_does_not_import_fails_the_suite() -> None:
    report = run_test_checks(files={"tests/test_calc.py": TESTS})

    assert report.passed is False
    assert "tests/test_calc.py" in report.tests["failing"][0]["nodeid"]


def test_a_tree_without_tests_fails_when_tests_are_required() -> None:
    report = run_test_checks(files={"calc.py": CALC})

    assert (report.passed, report.tests["failing"][0]["message"]) == (
        False,
        "No tests were collected.",
    )


def test_ruff_findings_appear_in_the_report() -> None:
    report = run_test_checks(
        files={"calc.py": CALC, "risky.py": RISKY, "tests/test_calc.py": TESTS}
    )

    assert {"code": "F401", "path": "risky.py", "line": 1} in [
        {"code": f["code"], "path": f["path"], "line": f["line"]} for f in report.lint
    ]


def test_bandit_findings_appear_in_the_report() -> None:
    report = run_test_checks(
        files={"calc.py": CALC, "risky.py": RISKY, "tests/test_calc.py": TESTS}
    )

    assert ("B602", "HIGH", "risky.py") in [
        (f["test_id"], f["severity"], f["path"]) for f in report.security
    ]


def test_the_checks_leave_no_workspace_behind() -> None:
    before = set((workspace_root() / "runs").glob("ws-*"))

    run_test_checks(files={"calc.py": CALC, "tests/test_calc.py": TESTS})

    assert set((workspace_root() / "runs").glob("ws-*")) == before


@pytest.mark.parametrize("path", ["/etc/passwd", "../escape.py", "a/../../escape.py"])
def test_a_workspace_refuses_paths_that_leave_it(path: str, tmp_path: Path) -> None:
    with pytest.raises(InvalidArtifactPath):
        workspace_materialize(files={path: "x"}, root=tmp_path)


def test_a_workspace_holds_the_files_it_was_given(tmp_path: Path) -> None:
    workspace = workspace_materialize(
        files={"pkg/mod.py": "x = 1\n", "data.bin": b"\x00\x01"}, root=tmp_path
    )
    try:
        content = ((workspace / "pkg/mod.py").read_text(), (workspace / "data.bin").read_bytes())
    finally:
        workspace_remove(workspace=workspace)

    assert content == ("x = 1\n", b"\x00\x01")
