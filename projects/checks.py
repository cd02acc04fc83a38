"""The tester's checks: a task's tests (pytest), a linter (ruff) and a security scan, run in
the sandbox on a fresh workspace, summarized in one ``CheckReport``.

One check round is one sandbox: a small driver (``check_driver.py``) runs ruff, the security
scan and then pytest inside a single bwrap, under the same mounts, filter, uid and limits as
any sandboxed command; the static tools run before any generated code does and their
results leave the sandbox first (see the driver). The tools come from the sandbox's own
minimal environment (``SANDBOX_VENV``, built from requirements-sandbox.txt). Pytest runs in
the driver's own interpreter (no second Python to start) with plugin autoload off and only
the plugins the checks need (JSON report; asyncio when the tests use it).

The security scan (``SANDBOX_SECURITY_SCANNER``) is ruff's ``S`` rules by default, ruff's
port of bandit's checks, in ruff's own process (a few milliseconds, where bandit's Python
took about 0.15 CPU-s of a round); ``bandit`` runs bandit itself, whose findings also carry
its severity and confidence. Every finding has a rule ``code`` (``S602``, or bandit's
``B602``) and a plain ``message``.
"""

from __future__ import annotations

import functools
import json
import secrets
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from django.conf import settings

from common.logging import get_logger
from common.tracing import traced

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
        # Every test that ran, "nodeid" and "outcome" (passed, failed, skipped, ...).
        "ran": [],
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
    summary["ran"] = [
        {"nodeid": str(test.get("nodeid", "")), "outcome": str(test.get("outcome", ""))}
        for test in report.get("tests") or []
    ]
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


def _parse_ruff_security(result: SandboxResult) -> list[dict[str, Any]]:
    """Ruff's ``S`` findings: rule code, rule name, message and place of each."""
    findings = _parse_ruff(result)
    if findings and findings[0]["code"] == "ruff-error":
        return findings
    try:
        names = [item.get("name") or "" for item in json.loads(result.stdout or "[]")]
    except ValueError:
        names = []
    return [
        {**finding, "tool": "ruff", "name": name}
        for finding, name in zip(findings, names or [""] * len(findings), strict=False)
    ]


def _parse_bandit(result: SandboxResult) -> list[dict[str, Any]]:
    try:
        data = json.loads(result.stdout or "{}")
    except ValueError:
        message = _clip(result.stderr or result.stdout, 500)
        return [{"code": "bandit-error", "test_id": "bandit-error", "message": message}]
    findings = []
    for item in data.get("results") or []:
        findings.append(
            {
                "code": item.get("test_id") or "",
                "tool": "bandit",
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


@functools.lru_cache(maxsize=1)
def _driver_source() -> str:
    return Path(__file__).with_name("check_driver.py").read_text(encoding="utf-8")


def _uses_asyncio(files: Mapping[str, str | bytes]) -> bool:
    markers = ("async def test", "pytest.mark.asyncio", "pytest_asyncio")
    return any(
        path.endswith(".py") and any(marker in content for marker in markers)
        for path, content in files.items()
        if isinstance(content, str)
    )


# pytest's own plugins a check never uses (doctests are not collected without
# --doctest-modules, no XML report, no pastebin, no step-wise or setup-only modes).
_UNUSED_PYTEST_PLUGINS = ("doctest", "junitxml", "pastebin", "stepwise", "setuponly", "setupplan")


def _security_tool(scanner: str, timeout: float) -> dict[str, Any]:
    excluded = ",".join(_EXCLUDED_DIRS)
    if scanner == "bandit":
        return {
            "name": "security",
            # assert in tests is how pytest works, not a finding
            "argv": ["python", "-m", "bandit", "-r", ".", "-f", "json", "-q", "--exit-zero"]
            + ["--skip", "B101", "-x", ",".join(f"./{name}" for name in _EXCLUDED_DIRS)],
            "timeout": timeout,
        }
    return {
        "name": "security",
        # --isolated: the tree's own ruff configuration cannot switch the S rules off;
        # S101 (assert) is how pytest works, not a finding.
        "argv": ["ruff", "check", "--isolated", "--select", "S", "--ignore", "S101"]
        + ["--output-format=json", "--no-cache", "--exit-zero"]
        + ["--extend-exclude", excluded, "."],
        "timeout": timeout,
    }


def _tools(*, asyncio: bool, timeout: float, scanner: str) -> list[dict[str, Any]]:
    excluded = ",".join(_EXCLUDED_DIRS)
    plugins = ["-p", "no:cacheprovider", "-p", "pytest_jsonreport.plugin"]
    plugins += [arg for name in _UNUSED_PYTEST_PLUGINS for arg in ("-p", f"no:{name}")]
    if asyncio:
        plugins += ["-p", "asyncio", "-o", "asyncio_default_fixture_loop_scope=function"]
    return [
        {
            "name": "ruff",
            "argv": ["ruff", "check", "--output-format=json", "--no-cache", "--exit-zero"]
            + ["--extend-exclude", excluded, "."],
            "timeout": timeout,
        },
        _security_tool(scanner, timeout),
        {
            "name": "pytest",
            # In the driver's interpreter (see check_driver.py): these are pytest's arguments.
            "in_process": True,
            "argv": ["-q", "--continue-on-collection-errors", *plugins, "--json-report"]
            + [f"--json-report-file={SANDBOX_WORKDIR}/{_REPORT_NAME}"]
            + ["--json-report-omit=log,streams,warnings,keywords"],
            "env": {"PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"},
            "timeout": timeout,
        },
    ]


def _sections(stdout: str, nonce: str) -> dict[str, dict[str, Any]]:
    """The driver's sections by tool name; the first of each name wins."""
    found: dict[str, dict[str, Any]] = {}
    data = stdout.encode("utf-8", errors="replace")
    position = 0
    marker = f"{nonce} ".encode()
    while True:
        start = data.find(marker, position)
        end_of_header = data.find(b"\n", start)
        if start < 0 or end_of_header < 0:
            return found
        try:
            _, name, length = data[start:end_of_header].decode().split(" ")
            size = int(length)
            payload = json.loads(data[end_of_header + 1 : end_of_header + 1 + size])
        except ValueError:
            position = end_of_header + 1
            continue
        if isinstance(payload, dict):
            found.setdefault(name, payload)
        position = end_of_header + 1 + size


def _tool_result(
    sections: dict[str, dict[str, Any]], name: str, round_result: SandboxResult
) -> SandboxResult:
    section = sections.get(name)
    if section is None:
        # The round ended before this tool did (wall time, a crash): say what the round said.
        return SandboxResult(
            exit_code=round_result.exit_code or 1,
            stdout="",
            stderr=round_result.stderr or f"{name} did not finish.",
            timed_out=round_result.timed_out,
            truncated=round_result.truncated,
            mode=round_result.mode,
            duration_ms=round_result.duration_ms,
            killed_for=round_result.killed_for,
        )
    return SandboxResult(
        exit_code=int(section.get("code", 1)),
        stdout=str(section.get("stdout", "")),
        stderr=str(section.get("stderr", "")),
        timed_out=int(section.get("code", 0)) == 124,
        truncated=round_result.truncated,
        mode=round_result.mode,
        duration_ms=round_result.duration_ms,
    )


def _checks_attributes(report: CheckReport) -> dict[str, Any]:
    tests = report.tests or {}
    return {
        "aiflow.checks.passed": report.passed,
        "aiflow.checks.mode": report.mode,
        "aiflow.checks.tests_passed": int(tests.get("passed") or 0),
        "aiflow.checks.tests_failed": int(tests.get("failed") or 0),
        "aiflow.checks.lint_findings": len(report.lint),
        "aiflow.checks.security_findings": len(report.security),
        "aiflow.checks.duration_ms": report.duration_ms,
    }


@traced(
    "sandbox checks",
    attributes=lambda *args, **kwargs: {"aiflow.checks.files": len(kwargs.get("files") or {})},
    result_attributes=_checks_attributes,
)
def run_test_checks(
    *,
    files: Mapping[str, str | bytes],
    limits: SandboxLimits | None = None,
    require_tests: bool = True,
) -> CheckReport:
    """Run ruff, the security scan and the tests on ``files`` in one sandbox; a red suite
    fails.

    The tree is materialized in a fresh workspace, removed afterwards. Raises
    ``SandboxUnavailable`` when no sandbox can run here (never runs unconfined unless
    ``SANDBOX_MODE=unsafe-local`` is set, and then ``mode`` says so).
    """
    started = time.monotonic()
    limits = limits or SandboxLimits()
    nonce = secrets.token_hex(16)
    scanner = settings.SANDBOX_SECURITY_SCANNER
    config = {
        "nonce": nonce,
        "tools": _tools(
            asyncio=_uses_asyncio(files), timeout=float(limits.wall_seconds), scanner=scanner
        ),
    }
    workspace = workspace_materialize(files=files)
    try:
        round_result = sandbox_run(
            workspace=workspace,
            argv=["python", "-I", "-c", _driver_source(), json.dumps(config)],
            limits=limits,
        )
        sections = _sections(round_result.stdout, nonce)
        tests_result = _tool_result(sections, "pytest", round_result)
        tests = _parse_pytest(tests_result, workspace / _REPORT_NAME, require_tests=require_tests)
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
        mode=round_result.mode,
        tests=tests,
        lint=_parse_ruff(_tool_result(sections, "ruff", round_result)),
        security=(_parse_bandit if scanner == "bandit" else _parse_ruff_security)(
            _tool_result(sections, "security", round_result)
        ),
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
