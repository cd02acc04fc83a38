"""Running a tree's tests for a tester or an integration suite: the sandbox's check round,
kept as a brief report (or None, and the label ``static review``, when no sandbox runs).

Each report names the tree it was run on (``tree_sha256``, every path and byte of it), so
that a suite asked to check a tree a green tester of the same run already checked takes that
report instead of running the same round again (``report_for_tree``): the last task of a
plan usually depends on all the others, and its tester's tree is then exactly the merged
tree integration checks.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

from django.conf import settings

from common.logging import get_logger

from ... import context as ctx
from .common import STATIC_REVIEW

logger = get_logger(__name__)


def _sandbox_checks() -> Any | None:
    """``projects.checks.run_test_checks`` when the sandbox may run tests, else None."""
    if not settings.SANDBOX_TESTS_ENABLED:
        return None
    try:
        from projects.checks import run_test_checks
    except ImportError:
        return None
    return run_test_checks


# Test ids a report keeps (a suite past this many is listed in part; the counts stay whole).
REPORT_TEST_IDS = 1000
# Ids of failing tests (and modules that could not be collected) a report keeps.
REPORT_FAILING_IDS = 5000


def _report_brief(report: dict[str, Any]) -> dict[str, Any]:
    """What a tester keeps of a sandbox report: the verdict, numeric test counts, the ids of
    the tests that ran, failures, lint and security findings, the output (all trimmed)."""
    tests = report.get("tests") or {}
    failing = tests.get("failing") or []
    failures = [f"{item.get('nodeid') or 'tests'}: {item.get('message', '')}" for item in failing]
    ran = [str(item.get("nodeid", "")) for item in tests.get("ran") or []]
    failing_ids = list(dict.fromkeys(str(i["nodeid"]) for i in failing if i.get("nodeid")))
    return {
        "passed": bool(report.get("passed")),
        "mode": report.get("mode"),
        "tests": {key: int(tests.get(key) or 0) for key in ("passed", "failed", "errors")},
        "test_ids": ran[:REPORT_TEST_IDS],
        # What a baseline judges (pipeline.regressions): the failing tests by id, and whether
        # the run failed as a whole (no report, a time-out, nothing collected).
        "failing_ids": failing_ids[:REPORT_FAILING_IDS],
        "general_failure": any(not item.get("nodeid") for item in failing),
        "summary": (
            f"{tests.get('passed', 0)} passed, {tests.get('failed', 0)} failed, "
            f"{tests.get('errors', 0)} errors; {len(report.get('lint') or [])} lint and "
            f"{len(report.get('security') or [])} security findings"
        ),
        "failures": [ctx.truncate(f, 1500) for f in failures[:20]],
        "lint": (report.get("lint") or [])[:20],
        "security": (report.get("security") or [])[:20],
        "output": ctx.truncate(str(report.get("output") or ""), 3000),
    }


def tree_digest(files: Mapping[str, str | bytes]) -> str:
    """SHA-256 of a whole tree: every path and its bytes, in path order, each length-prefixed
    (two trees have the same digest only when they hold the same files)."""
    digest = hashlib.sha256()
    for path in sorted(files):
        content = files[path]
        data = content.encode("utf-8") if isinstance(content, str) else content
        name = path.encode("utf-8")
        digest.update(b"%d:%b%d:" % (len(name), name, len(data)))
        digest.update(data)
    return digest.hexdigest()


def report_for_tree(
    files: Mapping[str, str | bytes], reports: Mapping[str, dict[str, Any] | None]
) -> tuple[str, dict[str, Any]] | None:
    """The first green report of ``reports`` (by name) that was run on exactly ``files``, as
    (name, report), else None.

    Only a green one: a red report's tree is fixed and checked again by the next attempt.
    """
    digest = tree_digest(files)
    for name, report in reports.items():
        if report and report.get("passed") and report.get("tree_sha256") == digest:
            return name, report
    return None


def check_files(files: Mapping[str, str | bytes]) -> tuple[dict[str, Any] | None, str]:
    """Run the sandbox checks on ``files``: (report brief, mode) or (None, static review).

    The brief names the tree it was run on (``tree_sha256``, see ``report_for_tree``)."""
    run_checks = _sandbox_checks()
    if run_checks is None:
        return None, STATIC_REVIEW
    try:
        report = run_checks(files=files)
    except Exception as exc:
        # No sandbox here (SandboxUnavailable) or it broke: fall back, labelled as such.
        logger.warning("tester.sandbox_unavailable", error=f"{type(exc).__name__}: {exc}")
        return None, STATIC_REVIEW
    data = report.as_dict() if hasattr(report, "as_dict") else dict(vars(report))
    return {**_report_brief(data), "tree_sha256": tree_digest(files)}, "sandbox"
