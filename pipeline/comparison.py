"""What ``GET /projects/{id}/compare`` and the Compare page show of each run: its tests,
its lines, its cost and time (``run_figures``), side by side (``run_compare``)."""

import re
from typing import Any

from django.db.models import Max

from common.errors import ApplicationError, NotFound
from projects.artifacts import (
    artifact_list_for_run,
    artifact_read,
    artifact_tree_diff,
)

from .context import is_test_path
from .models import PlanTask, Run, Step
from .selectors import run_last_test_report

# The tester's report summary: "3 passed, 1 failed, 0 errors; ..." (pipeline.services.stages).
_COUNTS = re.compile(r"(\d+) passed, (\d+) failed, (\d+) errors")


def report_test_counts(report: dict[str, Any] | None) -> dict[str, int] | None:
    """``{"passed", "failed", "errors"}`` of a tester's report brief, None without counts."""
    if not report:
        return None
    tests = report.get("tests")
    if isinstance(tests, dict) and "passed" in tests:
        return {key: int(tests.get(key) or 0) for key in ("passed", "failed", "errors")}
    match = _COUNTS.search(str(report.get("summary") or ""))
    if match is None:
        return None
    passed, failed, errors = (int(group) for group in match.groups())
    return {"passed": passed, "failed": failed, "errors": errors}


def _tests_figures(run: Run) -> dict[str, Any]:
    report = run_last_test_report(run=run)
    counts = report_test_counts(report) if report else None
    return {
        "suite": "integration" if report else None,
        "mode": report["mode"] if report else None,
        "passed": counts["passed"] if counts else None,
        "failed": counts["failed"] if counts else None,
        "errors": counts["errors"] if counts else None,
    }


# sha256 -> (lines, non-blank lines), None for a binary blob; shared by the compared runs.
LineCache = dict[str, tuple[int, int] | None]


def _blob_lines(data: bytes) -> tuple[int, int] | None:
    if b"\x00" in data:
        return None
    try:
        lines = data.decode("utf-8").splitlines()
    except UnicodeDecodeError:
        return None
    return len(lines), sum(1 for line in lines if line.strip())


def _line_figures(run: Run, cache: LineCache) -> dict[str, int] | None:
    """Files of the run's tree, non-blank lines of its Python code and of its tests, and
    lines of all its text files; None when the run has no files."""
    artifacts = list(artifact_list_for_run(run=run))
    if not artifacts:
        return None
    figures = {"files": len(artifacts), "code": 0, "tests": 0, "total": 0}
    for artifact in artifacts:
        if artifact.sha256 not in cache:
            cache[artifact.sha256] = _blob_lines(artifact_read(artifact=artifact))
        counted = cache[artifact.sha256]
        if counted is None:
            continue
        figures["total"] += counted[0]
        if artifact.path.endswith(".py"):
            figures["tests" if is_test_path(artifact.path) else "code"] += counted[1]
    return figures


def run_figures(*, run: Run, cache: LineCache | None = None) -> dict[str, Any]:
    """One run as compare shows it: status, wall time, tokens, cost, steps (reused), design
    rounds, fix attempts, tasks, tests passed/failed in the sandbox, lines of code."""
    steps = Step.objects.filter(run=run)
    wall = None
    if run.finished_at is not None:
        wall = round((run.finished_at - run.created_at).total_seconds(), 3)
    design_rounds = steps.filter(key__startswith="design:", role="planner").aggregate(
        rounds=Max("round")
    )["rounds"]
    tasks = PlanTask.objects.filter(run=run)
    return {
        "id": run.pk,
        "status": run.status,
        "error_code": run.error_code,
        "prompt": run.prompt,
        "base_run": run.base_run_id,
        "forked_from": run.forked_from_id,
        "created_at": run.created_at,
        "finished_at": run.finished_at,
        "wall_seconds": wall,
        "tokens_in": run.tokens_in,
        "tokens_out": run.tokens_out,
        "cost_usd": run.cost_usd,
        "steps": steps.count(),
        "steps_reused": steps.filter(reused=True).count(),
        "design_rounds": design_rounds or 0,
        "fix_attempts": steps.filter(key__startswith="task:", role="coder", attempt__gt=1).count(),
        "tasks": {
            "total": tasks.count(),
            "succeeded": tasks.filter(status=PlanTask.Status.SUCCEEDED).count(),
            "failed": tasks.filter(status=PlanTask.Status.FAILED).count(),
        },
        "tests": _tests_figures(run),
        "lines": _line_figures(run, cache if cache is not None else {}),
    }


MIN_COMPARED_RUNS, MAX_COMPARED_RUNS = 2, 3


def run_list_for_compare(*, project: Any, run_ids: list[int]) -> list[Run]:
    """The project's runs ``run_ids`` in that order (the caller checked the project's owner).

    A run of another project (or another user's) is ``NotFound``; fewer than two, more than
    three or repeated ids are ``ApplicationError`` (400).
    """
    if not MIN_COMPARED_RUNS <= len(run_ids) <= MAX_COMPARED_RUNS:
        raise ApplicationError(
            f"Compare {MIN_COMPARED_RUNS} to {MAX_COMPARED_RUNS} runs: ?runs=a,b[,c].",
            code="invalid",
        )
    if len(set(run_ids)) != len(run_ids):
        raise ApplicationError("Name each run once.", code="invalid")
    runs = {run.pk: run for run in Run.objects.filter(project=project, id__in=run_ids)}
    missing = [run_id for run_id in run_ids if run_id not in runs]
    if missing:
        raise NotFound(f"Run {missing[0]} not found in this project.")
    return [runs[run_id] for run_id in run_ids]


def run_compare(*, runs: list[Run], diff_pair: tuple[Run, Run] | None = None) -> dict[str, Any]:
    """The figures of ``runs`` and the file diff of ``diff_pair`` (default: the first two).

    The diff is None when either run of the pair has no files yet.
    """
    cache: LineCache = {}
    pair = diff_pair or (runs[0], runs[1])
    diff = None
    if all(artifact_list_for_run(run=run).exists() for run in pair):
        diff = artifact_tree_diff(from_run=pair[0], to_run=pair[1]).as_dict()
    return {
        "runs": [run_figures(run=run, cache=cache) for run in runs],
        "diff": diff,
    }
