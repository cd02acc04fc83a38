"""Carrying out an evaluation: every case of a suite, once per provider chain, on the workers.

Each case runs as an ordinary run (a fresh start, ``options.providers`` = the chain) of a
project of the user's named ``evaluation <suite>/<case>``, so the runs show up in the API,
the dashboard and the admin like any other. A change case (``repo/``) imports its repository
first (an import run) and then runs the change on top of it (``pipeline.evaluation.changes``).
The command waits for them (a few at a time), then runs the case's hidden tests in the
sandbox against each completed run's tree.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from common.errors import ApplicationError
from common.logging import get_logger
from projects.artifacts import artifact_list_for_run, artifact_read
from projects.models import Project
from projects.services import project_create

from ..models import Run
from ..services.followups import run_generate
from ..services.runs import run_cancel, run_options_validate
from .changes import change_figures, change_import_start
from .forecast_check import forecast_for_case
from .hidden import HiddenResult, hidden_tests_run
from .suites import Case, Suite

logger = get_logger(__name__)

OFFLINE_LABEL = (
    "offline test double: a deterministic stand-in for an LLM that builds the same small "
    "package for every prompt (and makes the same small change to any imported repository); "
    "these figures measure the platform, not a model"
)


def chain_is_offline(chain: list[str]) -> bool:
    """Whether every model of ``chain`` is the offline test double."""
    return all(entry.partition(":")[0] == "offline" for entry in chain)


@dataclass
class CaseResult:
    """One case on one chain: its run and how its hidden tests did."""

    case: str
    run_id: int | None
    status: str
    error: str = ""
    wall_seconds: float | None = None
    tokens_in: int = 0
    tokens_out: int = 0
    cost_usd: Decimal = Decimal("0")
    hidden_total: int = 0
    hidden: HiddenResult | None = None
    # A change case: its import run, the baseline's passing tests, the regressions left (None
    # until known) and the lines the change added plus removed (None without a finished tree).
    import_run_id: int | None = None
    baseline_passed: int | None = None
    regressions: list[str] | None = None
    lines_changed: int | None = None
    # The cost forecast asked for before the run started (``forecast_check``).
    forecast: dict[str, Any] | None = None

    @property
    def hidden_passed(self) -> int:
        return self.hidden.passed if self.hidden is not None else 0


@dataclass
class ChainResult:
    """A suite on one chain, with the figures the table shows."""

    chain: list[str]
    cases: list[CaseResult] = field(default_factory=list)

    @property
    def label(self) -> str:
        return ",".join(self.chain)

    @property
    def offline(self) -> bool:
        return chain_is_offline(self.chain)

    @property
    def changes(self) -> bool:
        """Whether the chain ran change cases (on imported repositories)."""
        return any(case.import_run_id is not None for case in self.cases)

    def change_figures(self) -> dict[str, Any]:
        """Of the change cases: baseline tests broken, mean lines changed."""
        cases = [case for case in self.cases if case.import_run_id is not None]
        changed = [case.lines_changed for case in cases if case.lines_changed is not None]
        return {
            "baseline_tests_broken": sum(len(case.regressions or []) for case in cases),
            "baseline_tests": sum(case.baseline_passed or 0 for case in cases),
            "mean_lines_changed": round(sum(changed) / len(changed), 1) if changed else None,
        }

    def figures(self) -> dict[str, Any]:
        """Runs completed, hidden tests passed (executability), means per run."""
        runs = len(self.cases)
        completed = sum(1 for c in self.cases if c.status == Run.Status.COMPLETED)
        passed = sum(c.hidden_passed for c in self.cases)
        total = sum(c.hidden_total for c in self.cases)
        walls = [c.wall_seconds for c in self.cases if c.wall_seconds is not None]
        return {
            "runs": runs,
            "completed": completed,
            "hidden_passed": passed,
            "hidden_total": total,
            "executability": round(passed / total, 4) if total else 0.0,
            "mean_wall_seconds": round(sum(walls) / len(walls), 3) if walls else None,
            "mean_tokens": round(sum(c.tokens_in + c.tokens_out for c in self.cases) / runs, 1)
            if runs
            else 0.0,
            "mean_cost_usd": (
                (sum((c.cost_usd for c in self.cases), Decimal("0")) / runs).quantize(
                    Decimal("0.000001")
                )
                if runs
                else Decimal("0")
            ),
        }


@dataclass
class Evaluation:
    suite: Suite
    chains: list[ChainResult]
    started_at: str
    finished_at: str = ""


def _project_for(user: Any, suite: Suite, case: Case) -> Project:
    name = f"evaluation {suite.name}/{case.name}"
    project = Project.objects.filter(owner=user, name=name).order_by("id").first()
    if project is None:
        project = project_create(
            owner=user, name=name, description=f"Evaluation case {case.name} of {suite.name}."
        )
    return project


def _case_finish(result: CaseResult, run: Run, case: Case) -> None:
    """Fill ``result`` from the finished ``run`` and run the hidden tests on its tree."""
    result.status = run.status
    result.error = run.error
    result.tokens_in, result.tokens_out, result.cost_usd = (
        run.tokens_in,
        run.tokens_out,
        run.cost_usd,
    )
    if run.finished_at is not None:
        result.wall_seconds = round((run.finished_at - run.created_at).total_seconds(), 3)
    if run.status == Run.Status.COMPLETED:
        tree: dict[str, str | bytes] = {
            artifact.path: artifact_read(artifact=artifact)
            for artifact in artifact_list_for_run(run=run)
        }
        result.hidden = hidden_tests_run(tree=tree, case=case)
        result.hidden_total = result.hidden.total


def chain_validate(chain: list[str]) -> list[str]:
    """The chain as run options store it (``provider:model`` each), or ``ApplicationError``."""
    return list(run_options_validate({"providers": chain})["providers"])


def _start(
    case: Case,
    result: CaseResult,
    base_run_id: int | None,
    *,
    chain: list[str],
    project: Project,
    user: Any,
    say: Callable[[str], None],
) -> int | None:
    """Start the case's run (on ``base_run_id`` for a change case), after asking for its cost
    forecast; its id, or None."""
    result.forecast = forecast_for_case(project=project, user=user, prompt=case.prompt, chain=chain)
    try:
        run = run_generate(
            project=project,
            user=user,
            prompt=case.prompt,
            options={"providers": chain},
            base_run_id=base_run_id,
        )
    except ApplicationError as exc:
        result.error = exc.detail
        say(f"  {case.name}: not started: {exc.detail}")
        return None
    result.run_id = run.pk
    say(f"  {case.name}: run {run.pk} started")
    return run.pk


def evaluation_run(
    *,
    suite: Suite,
    chains: list[list[str]],
    user: Any,
    timeout_seconds: float = 1800.0,
    concurrency: int = 1,
    poll_seconds: float = 1.0,
    on_progress: Callable[[str], None] | None = None,
) -> Evaluation:
    """Run every case of ``suite`` once per chain; see the module docstring.

    At most ``concurrency`` runs are in flight at once; a run still going after
    ``timeout_seconds`` is cancelled and counts as not completed.
    """
    from django.utils import timezone

    say = on_progress or (lambda line: None)
    evaluation = Evaluation(suite=suite, chains=[], started_at=timezone.now().isoformat())
    for chain in chains:
        outcome = ChainResult(chain=chain)
        evaluation.chains.append(outcome)
        say(f"chain {outcome.label}" + (f" ({OFFLINE_LABEL})" if outcome.offline else ""))
        waiting = list(suite.cases)
        active: dict[int, tuple[Case, CaseResult, float]] = {}

        while waiting or active:
            while waiting and len(active) < max(concurrency, 1):
                case = waiting.pop(0)
                result = CaseResult(case=case.name, run_id=None, status="not started")
                result.hidden_total = case.hidden_count
                outcome.cases.append(result)
                if not case.is_change:
                    started = _start(
                        case,
                        result,
                        None,
                        chain=chain,
                        project=_project_for(user, suite, case),
                        user=user,
                        say=say,
                    )
                    if started is not None:
                        active[started] = (case, result, time.monotonic() + timeout_seconds)
                    continue
                try:
                    imported = change_import_start(
                        project=_project_for(user, suite, case), user=user, case=case
                    )
                except ApplicationError as exc:
                    result.error = exc.detail
                    say(f"  {case.name}: not imported: {exc.detail}")
                    continue
                result.import_run_id = imported.pk
                active[imported.pk] = (case, result, time.monotonic() + timeout_seconds)
                say(f"  {case.name}: import run {imported.pk} started")
            for run_id, (case, result, deadline) in list(active.items()):
                run = Run.objects.get(pk=run_id)
                if not run.is_finished and time.monotonic() < deadline:
                    continue
                if run.kind == Run.Kind.IMPORT:
                    del active[run_id]
                    if run.status == Run.Status.COMPLETED:
                        say(f"  {case.name}: import run {run_id} completed")
                        started = _start(
                            case,
                            result,
                            run_id,
                            chain=chain,
                            project=run.project,
                            user=user,
                            say=say,
                        )
                        if started is not None:
                            active[started] = (case, result, time.monotonic() + timeout_seconds)
                    else:
                        if not run.is_finished:
                            try:
                                run = run_cancel(run=run)
                            except ApplicationError:  # it finished meanwhile
                                run.refresh_from_db()
                        result.status = f"import {run.status}"
                        result.error = run.error or "the import did not finish in time"
                        say(f"  {case.name}: import run {run_id} {run.status}: {result.error}")
                    continue
                timed_out = not run.is_finished
                if timed_out:
                    try:
                        run = run_cancel(run=run)
                    except ApplicationError:  # it finished meanwhile
                        run.refresh_from_db()
                del active[run_id]
                _case_finish(result, run, case)
                if result.import_run_id is not None:
                    found = change_figures(run=run, imported=Run(pk=result.import_run_id))
                    result.baseline_passed = found["baseline_passed"]
                    result.regressions = found["regressions"]
                    result.lines_changed = found["lines_changed"]
                if timed_out and run.status != Run.Status.COMPLETED:
                    result.error = f"timed out after {timeout_seconds:g}s"
                hidden = (
                    f"hidden tests {result.hidden_passed}/{result.hidden_total}"
                    if result.hidden is not None
                    else f"hidden tests not run ({result.hidden_total} count as failed)"
                )
                say(f"  {case.name}: run {run_id} {run.status}; {hidden}")
            if active:
                time.sleep(poll_seconds)
    evaluation.finished_at = timezone.now().isoformat()
    logger.info("evaluation.finished", suite=suite.name, chains=len(chains))
    return evaluation
