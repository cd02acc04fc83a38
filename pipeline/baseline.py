"""The baseline: an imported repository's own tests, run once in the sandbox at import.

``detect_test_command`` says how a tree's tests run: a Python project with pytest signs
(``pytest.ini``, ``[tool.pytest…]`` in ``pyproject.toml``, ``[tool:pytest]`` in
``setup.cfg``, ``[pytest]`` in ``tox.ini``, a ``conftest.py``, a ``tests`` directory, or
``test_*.py`` / ``*_test.py`` modules) runs ``python -m pytest``; anything else is recorded as
not run, with the reason. ``baseline_run`` runs the suite in the sandbox (the tester's own
check round, ``projects.checks``) and returns every test's id and outcome: the before
picture a later run's tests are compared with (``pipeline.regressions``).
"""

from __future__ import annotations

from typing import Any

from django.conf import settings

from common.logging import get_logger

logger = get_logger(__name__)

PYTEST_COMMAND = "python -m pytest"
# Tests kept per baseline (a suite past this many is recorded in part; the counts stay whole).
MAX_BASELINE_TESTS = 20_000
OUTPUT_CHARS = 3000
NOT_RUN = "not_run"
PASSED = "passed"
FAILED = "failed"


def _is_test_module(path: str) -> bool:
    name = path.rsplit("/", 1)[-1]
    return name.endswith(".py") and (name.startswith("test_") or name.endswith("_test.py"))


def detect_test_command(texts: dict[str, str], paths: list[str]) -> tuple[str | None, str]:
    """``(command, why)``: how the tree's tests run, or ``(None, the reason they are not)``.

    ``texts`` are the tree's text files (configuration is read from them), ``paths`` every
    path of the tree.
    """
    python = [path for path in paths if path.endswith(".py")]
    if not python:
        return None, (
            "Not a Python project (no .py files): only Python projects' tests (pytest) are "
            "run at import for now."
        )
    signs = []
    if "pytest.ini" in texts:
        signs.append("pytest.ini")
    if "[tool.pytest" in texts.get("pyproject.toml", ""):
        signs.append("pyproject.toml")
    if "[tool:pytest]" in texts.get("setup.cfg", ""):
        signs.append("setup.cfg")
    if "[pytest]" in texts.get("tox.ini", ""):
        signs.append("tox.ini")
    if any(path.rsplit("/", 1)[-1] == "conftest.py" for path in python):
        signs.append("conftest.py")
    tests = [path for path in python if _is_test_module(path)]
    if tests:
        signs.append(f"{len(tests)} test module(s)")
    if not tests:
        return None, (
            "A Python project without test modules (no test_*.py or *_test.py files)"
            + (f" although {', '.join(signs)} configure pytest." if signs else ".")
        )
    return PYTEST_COMMAND, "pytest: " + ", ".join(signs)


def _tests_of(report: dict[str, Any]) -> list[dict[str, str]]:
    """Each test's id and outcome; a module that could not be collected is one ``error``."""
    tests = report.get("tests") or {}
    seen: dict[str, str] = {}
    for item in tests.get("ran") or []:
        test_id = str(item.get("nodeid") or "")[:1000]
        if test_id:
            seen[test_id] = str(item.get("outcome") or "")[:16]
    for item in tests.get("failing") or []:
        test_id = str(item.get("nodeid") or "")[:1000]
        if test_id and test_id not in seen:
            seen[test_id] = "error"
    return [{"id": test_id, "outcome": outcome} for test_id, outcome in seen.items()]


def _counts(tests: list[dict[str, str]]) -> dict[str, int]:
    counts = {"passed": 0, "failed": 0, "errors": 0, "skipped": 0}
    for test in tests:
        outcome = test["outcome"]
        if outcome in ("passed", "xpassed"):
            counts["passed"] += 1
        elif outcome == "failed":
            counts["failed"] += 1
        elif outcome == "error":
            counts["errors"] += 1
        else:
            counts["skipped"] += 1
    return counts


def not_run(command: str | None, reason: str) -> dict[str, Any]:
    return {
        "status": NOT_RUN,
        "command": command or "",
        "reason": reason,
        "mode": "",
        "counts": {},
        "tests": [],
        "output": "",
    }


def baseline_run(files: dict[str, str | bytes]) -> dict[str, Any]:
    """Run the tree's own tests in the sandbox: ``{status, command, reason, mode, counts,
    tests: [{id, outcome}], output}``; ``status`` is passed, failed or not_run."""
    texts = {path: data for path, data in files.items() if isinstance(data, str)}
    command, why = detect_test_command(texts, sorted(files))
    if command is None:
        return not_run(None, why)
    if not settings.SANDBOX_TESTS_ENABLED:
        return not_run(command, "The sandbox is off (SANDBOX_TESTS_ENABLED=false): no code runs.")
    from projects.checks import run_test_checks
    from projects.sandbox import SandboxUnavailable

    try:
        report = run_test_checks(files=files, require_tests=False).as_dict()
    except SandboxUnavailable as exc:
        return not_run(command, f"No sandbox can run here: {exc.detail}")
    tests = _tests_of(report)
    counts = _counts(tests)
    status = PASSED if report.get("passed") and not counts["failed"] else FAILED
    if not tests:
        status = FAILED if not report.get("passed") else PASSED
    output = str(report.get("output") or "")
    logger.info("baseline.finished", status=status, tests=len(tests), mode=report.get("mode"))
    return {
        "status": status,
        "command": command,
        "reason": why if tests else f"{why}; no test ran",
        "mode": str(report.get("mode") or ""),
        "counts": counts,
        "tests": tests[:MAX_BASELINE_TESTS],
        "output": output[-OUTPUT_CHARS:],
    }
