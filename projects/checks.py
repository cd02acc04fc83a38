"""The tester's checks: a task's tests (pytest), a linter (ruff) and a security scan (bandit),
each run in the sandbox on a fresh workspace, summarized in one ``CheckReport``.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from common.logging import get_logger

from .sandbox import SANDBOX_WORKDIR, SandboxLimits, SandboxResult, sandbox_run
from .workspace import workspace_materialize, workspace_remove

logger = get_logger(__name__)

_REPORT_NAME = ".aiflow-pytest-report.json"
_OUTPUT_CHARS = 20_000
_MESSAGE_CHARS = 2_000
# Directories the linters never look into (tool caches, virtualenvs a project may carry).
_EXCLUDED_DIRS = (".venv", "venv", ".git", "__pycache__", "node_modules", ".pytest_cache")


@dataclass
class CheckReport:
    """The verdict of running a tree's checks in the sandbox.

    ``passed`` is about the test suite only (green, and at least one test unless
    ``require_tests=False``); lint and security findings are reported for the reviewer.
    """

    passed: bool
    mode: str
    tests: dict[str, Any] = field(default_factory=dict)
    lint: list[dict[str, Any]] = field(default_factory=list)
    security: list[dict[str, Any]] = field(default_factory=list)
    output: str = ""
    duration_ms: int = 0

    def as_dict(self) -> dict[str, Any]:
        """A JSON-serializable form (stored on the step, sent in ``test.result``)."""
        return asdict(self)


def _relative(path: str | None) -> str:
    text = str(path or "")
    for prefix in (SANDBOX_WORKDIR + "/", "./"):
        if text.startswith(prefix):
            return text[len(prefix) :]
    return text


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 15] + "\n...[truncated]"


def _failure_message(test: dict[str, Any]) -> str:
    for stage in ("setup", "call", "teardown"):
        info = test.get(stage) or {}
        if info.get("outcome") in ("failed", "error"):
            crash = info.get("crash") or {}
            message = crash.get("message") or info.get("longrepr") or ""
            return _clip(str(message), _MESSAGE_CHARS)
    return _clip(str(test.get("longrepr") or test.get("outcome") or ""), _MESSAGE_CHARS)


def _parse_pytest(
    result: SandboxResult, report_path: Path, *, require_tests: bool
) -> dict[str, Any]:
    summary: dict[str, Any] = {
        "passed": 0,
        "failed": 0,
        "errors": 0,
        "collected": 0,
        "exit_code": result.exit_code,
        "timed_out": result.timed_out,
        "failing": [],
    }
    report: dict[str, Any] = {}
    if report_path.is_file() and not report_path.is_symlink():
        try:
            report = json.loads(report_path.read_text(encoding="utf-8", errors="replace"))
        except ValueError:
            report = {}
    counts = report.get("summary") or {}
    summary["passed"] = int(counts.get("passed", 0))
    summary["failed"] = int(counts.get("failed", 0))
    summary["errors"] = int(counts.get("error", 0))
    summary["collected"] = int(counts.get("collected", counts.get("total", 0)))
    failing: list[dict[str, str]] = []
    for test in report.get("tests") or []:
        if test.get("outcome") in ("failed", "error"):
            failing.append(
                {"nodeid": str(test.get("nodeid", "")), "message": _failure_message(test)}
            )
    for collector in report.get("collectors") or []:
        if collector.get("outcome") == "failed":
            summary["errors"] += 1
            failing.append(
                {
                    "nodeid": str(collector.get("nodeid", "")),
                    "message": _clip(str(collector.get("longrepr", "")), _MESSAGE_CHARS),
                }
            )
    if result.timed_out:
        failing.append({"nodeid": "", "message": "The test run hit the sandbox's wall time limit."})
    elif not report and result.exit_code != 0:
        failing.append(
            {"nodeid": "", "message": _clip(result.stderr or result.stdout, _MESSAGE_CHARS)}
        )
    elif result.exit_code == 5 and require_tests:
        failing.append({"nodeid": "", "message": "No tests were collected."})
    summary["failing"] = failing
    return summary


def _parse_ruff(result: SandboxResult) -> list[dict[str, Any]]:
    try:
        items = json.loads(result.stdout or "[]")
    except ValueError:
        return [{"code": "ruff-error", "message": _clip(result.stderr or result.stdout, 500)}]
    findings = []
    for item in items if isinstance(items, list) else []:
        location = item.get("location") or {}
        findings.append(
            {
                "code": item.get("code") or "",
                "message": item.get("message") or "",
                "path": _relative(item.get("filename")),
                "line": location.get("row"),
                "col": location.get("column"),
            }
        )
    return findings


def _parse_bandit(result: SandboxResult) -> list[dict[str, Any]]:
    try:
        data = json.loads(result.stdout or "{}")
    except ValueError:
        return [{"test_id": "bandit-error", "message": _clip(result.stderr or result.stdout, 500)}]
    findings = []
    for item in data.get("results") or []:
        findings.append(
            {
                "test_id": item.get("test_id") or "",
                "test_name": item.get("test_name") or "",
                "severity": item.get("issue_severity") or "",
                "confidence": item.get("issue_confidence") or "",
                "message": item.get("issue_text") or "",
                "path": _relative(item.get("filename")),
                "line": item.get("line_number"),
            }
        )
    return findings


def run_test_checks(
    *,
    files: dict[str, str],
    limits: SandboxLimits | None = None,
    require_tests: bool = True,
) -> CheckReport:
    """Run the tests, ruff and bandit on ``files`` in the sandbox; a red suite fails.

    The tree is materialized in a fresh workspace, removed afterwards. Raises
    ``SandboxUnavailable`` when no sandbox can run here (never runs unconfined unless
    ``SANDBOX_MODE=unsafe-local`` is set, and then ``mode`` says so).
    """
    started = time.monotonic()
    workspace = workspace_materialize(files=files)
    try:
        tests_result = sandbox_run(
            workspace=workspace,
            argv=[
                "python",
                "-m",
                "pytest",
                "-q",
                "-p",
                "no:cacheprovider",
                "-o",
                "asyncio_default_fixture_loop_scope=function",
                "--json-report",
                f"--json-report-file={SANDBOX_WORKDIR}/{_REPORT_NAME}",
                "--json-report-omit=log,streams,warnings,keywords",
            ],
            limits=limits,
        )
        tests = _parse_pytest(tests_result, workspace / _REPORT_NAME, require_tests=require_tests)
        (workspace / _REPORT_NAME).unlink(missing_ok=True)
        lint_result = sandbox_run(
            workspace=workspace,
            argv=[
                "ruff",
                "check",
                "--output-format=json",
                "--no-cache",
                "--exit-zero",
                "--extend-exclude",
                ",".join(_EXCLUDED_DIRS),
                ".",
            ],
            limits=limits,
        )
        security_result = sandbox_run(
            workspace=workspace,
            argv=[
                "python",
                "-m",
                "bandit",
                "-r",
                ".",
                "-f",
                "json",
                "-q",
                "--exit-zero",
                # assert in tests is how pytest works, not a finding
                "--skip",
                "B101",
                "-x",
                ",".join(f"./{name}" for name in _EXCLUDED_DIRS),
            ],
            limits=limits,
        )
    finally:
        workspace_remove(workspace=workspace)
    passed = (
        not tests_result.timed_out
        and (tests_result.exit_code == 0 or (tests_result.exit_code == 5 and not require_tests))
        and not tests["failing"]
    )
    output = tests_result.stdout
    if tests_result.stderr.strip():
        output += "\n" + tests_result.stderr
    report = CheckReport(
        passed=passed,
        mode=tests_result.mode,
        tests=tests,
        lint=_parse_ruff(lint_result),
        security=_parse_bandit(security_result),
        output=_clip(output, _OUTPUT_CHARS),
        duration_ms=int((time.monotonic() - started) * 1000),
    )
    logger.info(
        "checks.finished",
        passed=report.passed,
        mode=report.mode,
        failed=tests["failed"],
        errors=tests["errors"],
        lint=len(report.lint),
        security=len(report.security),
    )
    return report
