"""Regressions: a test that passed in the baseline and fails after a change.

A run whose tree descends from an import (its own base, or the base of its base…) is judged
against that import's baseline (``RunImport`` and its ``BaselineTest`` rows). Every tester
and every integration suite runs the whole suite of the new tree; ``judge`` reads the
sandbox's report against the baseline:

- a **regression** is a baseline test that passed and now fails, errors, or whose module can
  no longer be collected; any regression fails the attempt (or the suite), and its test ids
  go back to the coder as feedback and are listed on the run;
- a test that already failed in the baseline (a **known failure**) does not fail the verdict:
  the change is not to blame for it;
- anything else that fails (the task's own new tests, a crash of the whole run) fails it as
  it always did.

``run_regressions`` lists a run's regressions as they stand (each task's latest tester and the
latest integration suite), and those caught on the way and fixed in the loop.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from common.db import PrecompiledRows

from .models import BaselineTest, Run, RunImport, Step

# Regression ids kept per verdict (a change that breaks more is cut, and says so).
MAX_LISTED = 200
PASSED = ("passed", "xpassed")
FAILED = ("failed", "error")


@dataclass(frozen=True)
class Baseline:
    """The tests of the import a run descends from: those that passed, and those that did not."""

    run_id: int
    passed: frozenset[str]
    failing: frozenset[str]


def baseline_for(*, run: Run) -> Baseline | None:
    """The baseline ``run`` is judged against, or None (no import below it, or its tests did
    not run)."""
    from .selectors import run_import_origin

    if run.base_run_id is None:
        return None
    origin = run_import_origin(run=Run(id=run.base_run_id))
    if origin is None or origin.baseline_status not in (
        RunImport.Baseline.PASSED,
        RunImport.Baseline.FAILED,
    ):
        return None
    rows = BaselineTest.objects.filter(run_id=origin.run_id).values_list("test_id", "outcome")
    passed = frozenset(test_id for test_id, outcome in rows if outcome in PASSED)
    failing = frozenset(test_id for test_id, outcome in rows if outcome in FAILED)
    return Baseline(run_id=origin.run_id, passed=passed, failing=failing)


def _module_of(test_id: str) -> str:
    return test_id.split("::", 1)[0]


def regressions_in(failing_ids: list[str], baseline: Baseline) -> list[str]:
    """The baseline's passing tests among ``failing_ids`` (tests, or modules that could not
    be collected), sorted."""
    failing = set(failing_ids)
    broken_modules = {test_id for test_id in failing if "::" not in test_id}
    return sorted(
        test_id
        for test_id in baseline.passed
        if test_id in failing or _module_of(test_id) in broken_modules
    )


def judge(report: dict[str, Any], baseline: Baseline) -> dict[str, Any]:
    """``report`` (a tester's report brief) judged against ``baseline``: ``passed`` true when
    every failure is a known failure, ``regressions`` the baseline tests it broke,
    ``known_failures`` the failures the baseline already had; the regressions lead the
    ``failures`` list, said as such. A new dict."""
    failing_ids = [str(test_id) for test_id in report.get("failing_ids") or []]
    regressions = regressions_in(failing_ids, baseline)
    known = sorted(set(failing_ids) & baseline.failing)
    general = bool(report.get("general_failure"))
    excused = not general and bool(failing_ids) and set(failing_ids) <= baseline.failing
    judged = dict(report)
    judged["passed"] = not regressions and (bool(report.get("passed")) or excused)
    judged["regressions"] = regressions[:MAX_LISTED]
    judged["known_failures"] = known[:MAX_LISTED]
    lines = [
        f"Regression: {test_id} passed before this change and fails now."
        for test_id in regressions[:20]
    ]
    if len(regressions) > 20:
        lines.append(f"... and {len(regressions) - 20} more regressions.")
    others = [
        failure
        for failure in report.get("failures") or []
        if str(failure).split(": ", 1)[0] not in baseline.failing
    ]
    judged["failures"] = lines + others
    if regressions:
        judged["summary"] = f"{len(regressions)} regression(s); " + str(report.get("summary", ""))
    return judged


# --- listing ---------------------------------------------------------------------------------


# Read on every GET /runs/{id}: its SQL is compiled once (common.db).
_tester_regressions = PrecompiledRows(
    lambda run_id: Step.objects.filter(
        run_id=run_id, role="tester", status=Step.Status.SUCCEEDED
    ).values_list("key", "plan_task_id", "attempt", "output__regressions")
)


def _regression_rows(run: Run) -> list[tuple[str, int | None, int, list[str] | None]]:
    """Each succeeded tester step of the run: key, plan task, attempt, its regressions (only
    that key of the output is read)."""
    return _tester_regressions.all(int(run.pk))  # type: ignore[return-value]


def run_regressions(
    *, run: Run, rows: list[tuple[str, int | None, int, Any]] | None = None
) -> dict[str, list[str]]:
    """``{"regressions": ids still failing, "regressions_caught": every id any check of the
    run caught}``; both empty for a run with no baseline.

    "Still failing" is read from the latest tester of each task and the latest integration
    suite. ``rows``: the run's succeeded testers as ``selectors.run_design_and_tester_rows``
    reads them (read here when not given).
    """
    latest: dict[Any, tuple[int, list[str]]] = {}
    caught: set[str] = set()
    for key, task_id, attempt, found in _regression_rows(run) if rows is None else rows:
        ids = [str(test_id) for test_id in found or []]
        caught.update(ids)
        suite = "suite" if key.startswith("integrate:") else key
        group = task_id if task_id is not None else suite
        if group not in latest or attempt > latest[group][0]:
            latest[group] = (attempt, ids)
    now = {test_id for _, ids in latest.values() for test_id in ids}
    return {"regressions": sorted(now), "regressions_caught": sorted(caught)}
