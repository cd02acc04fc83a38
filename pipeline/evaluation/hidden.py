"""Running a case's hidden tests in the sandbox against a run's tree.

The tree is written to a fresh workspace with the hidden tests beside it in ``HIDDEN_DIR``
(anything the run itself wrote there is dropped first), and pytest runs only that directory
under the sandbox (``projects.sandbox``), configured by an ini file of ours: the generated
project's ``conftest.py`` files and pytest settings do not load (``--noconftest``, ``-c``),
and ``PYTHONSAFEPATH`` keeps a generated ``pytest.py`` from standing in for pytest. The
project's package is importable from the tree's root or ``src/``.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

from projects.sandbox import SANDBOX_WORKDIR, SandboxLimits, sandbox_run
from projects.workspace import workspace_materialize, workspace_remove

from .suites import Case

HIDDEN_DIR = "aiflow_hidden_tests"
_REPORT = ".aiflow-hidden-report.json"
_INI = """[pytest]
pythonpath = .. ../src
"""
_MESSAGE_CHARS = 1_000
_OUTPUT_CHARS = 8_000


@dataclass
class HiddenResult:
    """What the hidden tests of one case did against one tree.

    ``total`` is the larger of the tests the hidden files define and the tests pytest ran,
    so a hidden file that fails to import counts all its tests as not passed.
    """

    passed: int
    failed: int
    errors: int
    total: int
    mode: str
    timed_out: bool = False
    tests: list[dict[str, str]] = field(default_factory=list)
    output: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 15] + "\n...[truncated]"


def _message(test: dict[str, Any]) -> str:
    for stage in ("setup", "call", "teardown"):
        info = test.get(stage) or {}
        if info.get("outcome") in ("failed", "error"):
            crash = info.get("crash") or {}
            return _clip(str(crash.get("message") or info.get("longrepr") or ""), _MESSAGE_CHARS)
    return ""


def _relative(nodeid: str) -> str:
    return nodeid.removeprefix(f"{HIDDEN_DIR}/")


def hidden_tests_run(
    *, tree: dict[str, str | bytes], case: Case, limits: SandboxLimits | None = None
) -> HiddenResult:
    """Run ``case``'s hidden tests on ``tree`` (path -> content) in the sandbox.

    Raises ``SandboxUnavailable`` when no sandbox can run here.
    """
    files: dict[str, str | bytes] = {
        path: content
        for path, content in tree.items()
        if path.split("/", 1)[0] not in (HIDDEN_DIR, _REPORT)
    }
    files.update({f"{HIDDEN_DIR}/{name}": source for name, source in case.hidden.items()})
    files[f"{HIDDEN_DIR}/pytest.ini"] = _INI
    workspace = workspace_materialize(files=files)
    try:
        result = sandbox_run(
            workspace=workspace,
            argv=[
                "python",
                "-m",
                "pytest",
                "-q",
                "-c",
                f"{HIDDEN_DIR}/pytest.ini",
                "--noconftest",
                # One hidden file that cannot import must not keep the others from running.
                "--continue-on-collection-errors",
                "--import-mode=importlib",
                "-p",
                "no:cacheprovider",
                "-o",
                "asyncio_default_fixture_loop_scope=function",
                "--json-report",
                f"--json-report-file={SANDBOX_WORKDIR}/{_REPORT}",
                "--json-report-omit=log,streams,warnings,keywords",
                HIDDEN_DIR,
            ],
            limits=limits,
            env={"PYTHONSAFEPATH": "1"},
        )
        report_file = workspace / _REPORT
        report: dict[str, Any] = {}
        if report_file.is_file() and not report_file.is_symlink():
            try:
                report = json.loads(report_file.read_text(encoding="utf-8", errors="replace"))
            except ValueError:
                report = {}
    finally:
        workspace_remove(workspace=workspace)
    tests: list[dict[str, str]] = []
    for test in report.get("tests") or []:
        outcome = str(test.get("outcome", ""))
        tests.append(
            {
                "nodeid": _relative(str(test.get("nodeid", ""))),
                "outcome": outcome,
                "message": _message(test) if outcome in ("failed", "error") else "",
            }
        )
    for collector in report.get("collectors") or []:
        if collector.get("outcome") == "failed":
            tests.append(
                {
                    "nodeid": _relative(str(collector.get("nodeid", ""))),
                    "outcome": "error",
                    "message": _clip(str(collector.get("longrepr", "")), _MESSAGE_CHARS),
                }
            )
    passed = sum(1 for t in tests if t["outcome"] == "passed")
    failed = sum(1 for t in tests if t["outcome"] == "failed")
    errors = sum(1 for t in tests if t["outcome"] == "error")
    ran = sum(1 for t in tests if "::" in t["nodeid"])  # tests, not collection errors
    output = result.stdout + ("\n" + result.stderr if result.stderr.strip() else "")
    return HiddenResult(
        passed=passed,
        failed=failed,
        errors=errors,
        total=max(case.hidden_count, ran),
        mode=result.mode,
        timed_out=result.timed_out,
        tests=tests,
        output=_clip(output, _OUTPUT_CHARS),
    )
