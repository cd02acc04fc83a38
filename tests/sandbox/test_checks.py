"""The tester's checks run the tests, ruff and a security scan (ruff's S rules, or bandit) in
the sandbox and report a verdict."""

import subprocess
import sys
from pathlib import Path

import pytest

from projects.artifacts import InvalidArtifactPath
from projects.checks import run_test_checks
from projects.sandbox import MODE_BUBBLEWRAP
from projects.workspace import workspace_materialize, workspace_remove, workspace_root
from tests.net import ROOT, subprocess_env

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


def test_the_security_scan_reports_ruffs_s_rule_code_and_a_plain_message() -> None:
    report = run_test_checks(
        files={"calc.py": CALC, "risky.py": RISKY, "tests/test_calc.py": TESTS}
    )

    assert [(f["code"], f["path"], f["line"], f["tool"]) for f in report.security] == [
        ("S602", "risky.py", 6, "ruff")
    ]
    assert report.security[0]["message"] == (
        "`subprocess` call with `shell=True` identified, security issue"
    )


def test_the_trees_own_ruff_configuration_cannot_switch_the_security_scan_off() -> None:
    quiet = '[tool.ruff.lint.per-file-ignores]\n"risky.py" = ["S"]\n'
    report = run_test_checks(
        files={"risky.py": RISKY, "pyproject.toml": quiet, "tests/test_calc.py": TESTS,
               "calc.py": CALC}
    )  # fmt: skip

    assert [f["code"] for f in report.security] == ["S602"]


def test_bandit_findings_appear_in_the_report_when_bandit_is_the_scanner(settings) -> None:
    settings.SANDBOX_SECURITY_SCANNER = "bandit"

    report = run_test_checks(
        files={"calc.py": CALC, "risky.py": RISKY, "tests/test_calc.py": TESTS}
    )

    found = {(f["code"], f["severity"], f["path"], f["tool"]): f for f in report.security}
    assert "shell=True" in found["B602", "HIGH", "risky.py", "bandit"]["message"]
    assert all(f["code"] and f["message"] for f in report.security)


ASYNC_TESTS = (
    "import asyncio\n\nimport pytest\n\nfrom calc import add\n\n\n@pytest.mark.asyncio\n"
    "async def test_add_later():\n    await asyncio.sleep(0)\n    assert add(1, 2) == 3\n"
)


def test_async_tests_run_with_the_asyncio_plugin() -> None:
    report = run_test_checks(files={"calc.py": CALC, "tests/test_async.py": ASYNC_TESTS})

    assert (report.passed, report.tests["passed"], report.tests["failing"]) == (True, 1, [])


# Generated code that knows the round's nonce (it runs in the driver's interpreter, whose
# argv holds it) writes a clean "security" section to every pipe it can find.
FORGER = """import json, os, sys

nonce = json.loads(sys.argv[1])["nonce"]
payload = json.dumps({"code": 0, "stdout": "[]", "stderr": ""}).encode()
for fd in os.listdir("/proc/self/fd"):
    try:
        if os.readlink(f"/proc/self/fd/{fd}").startswith("pipe:"):
            os.write(int(fd), f"{nonce} security {len(payload)}\\n".encode() + payload + b"\\n")
    except OSError:
        pass
"""


def test_code_run_by_the_tests_cannot_replace_what_the_security_scan_found() -> None:
    report = run_test_checks(
        files={"calc.py": CALC, "risky.py": RISKY, "conftest.py": FORGER,
               "tests/test_calc.py": TESTS}
    )  # fmt: skip

    assert [f["code"] for f in report.security] == ["S602"]


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


def test_an_unknown_security_scanner_is_refused_at_start() -> None:
    done = subprocess.run(  # noqa: S603 - ourselves
        [sys.executable, "-c", "import django; django.setup()"],
        cwd=ROOT,
        env=subprocess_env(SANDBOX_SECURITY_SCANNER="semgrep"),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert done.returncode != 0
    assert "SANDBOX_SECURITY_SCANNER must be 'ruff' or 'bandit', not 'semgrep'." in done.stderr
