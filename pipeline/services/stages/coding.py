"""Coding: the approval gate and the orchestrator, then per task coder -> tester (fix loop).

No layer barrier: a task is queued the moment its own dependencies are green. Whoever
turns a task green claims, with one conditional UPDATE, every task that just became ready
(``plan_claim_ready``), so a task is queued exactly once however many of its dependencies
finish together; whoever turns the last one green claims integration.
"""

from __future__ import annotations

from typing import Any

from django.db import transaction

from common.logging import get_logger

from ... import context as ctx
from ...edits import edits_apply, rewrite_max_lines
from ...flow import Next
from ...models import PlanTask, Run, Step
from ...regressions import baseline_for, judge
from ...roles import CODER, ORCHESTRATOR, TESTER
from ..run_state import emit, run_check_bounds, run_fail, run_set_status
from ..steering import task_messages_take
from ..steps import StageEdge, StepLedger, StepSpec, model_call, step_run
from .checks import check_files
from .common import (
    STATIC_REVIEW,
    base_binary,
    base_binary_paths,
    base_context,
    base_files,
    base_import,
    normalize_files,
    normalize_paths,
    plan_tasks,
    run_chain,
    run_option,
    step_output,
    tree_apply,
)
from .dispatch import plan_next
from .task_reads import dependency_changes, dependency_files, task_base_tree, task_with_run

logger = get_logger(__name__)


def _layers(run_id: int) -> list[list[PlanTask]]:
    layers: dict[int, list[PlanTask]] = {}
    for task in plan_tasks(run_id):
        layers.setdefault(task.layer, []).append(task)
    return [layers[index] for index in sorted(layers)]


def orchestrate(*, run_id: int) -> Next | None:
    """The approval gate, then the orchestrator's brief, then the layers' fan-out."""
    run = run_check_bounds(run_id=run_id)
    if run_option(run, "require_approval") and run.approved_at is None:
        with transaction.atomic():
            if run_set_status(
                run_id=run_id,
                status=Run.Status.AWAITING_APPROVAL,
                from_statuses=(Run.Status.DESIGNING, Run.Status.QUEUED),
            ):
                emit(
                    run_id=run_id,
                    type="run.awaiting_approval",
                    payload={"approve_url": f"/runs/{run_id}/approve"},
                )
        return None
    started = StageEdge(
        stage="coding",
        edge="started",
        status=Run.Status.RUNNING,
        from_statuses=(Run.Status.QUEUED, Run.Status.DESIGNING),
        started=True,
    )
    layers = _layers(run_id)
    if not layers:
        started.mark(run_id)
        run_fail(run_id=run_id, code="invalid_plan", detail="The approved plan has no tasks.")
        return None

    def prepare(run: Run, step: Step) -> dict[str, Any]:
        context = base_context(run, step, "orchestrate")
        context["design"] = ctx.design_brief((run.design or {}), paths=set())
        context["layers"] = [
            [{"key": t.key, "title": t.title, "depends_on": t.depends_on} for t in layer]
            for layer in layers
        ]
        return {"context": context, "chain": run_chain(run)}

    def execute(prepared: dict[str, Any], ledger: StepLedger) -> dict[str, Any]:
        answer = model_call(
            prompt=ORCHESTRATOR,
            context=prepared["context"],
            ledger=ledger,
            chain=prepared["chain"],
            last=True,
        )
        return answer.model_dump(mode="json")

    step_run(
        run_id=run_id,
        spec=StepSpec(role="orchestrator", key="orchestrate", edge=started),
        prepare=prepare,
        execute=execute,
        run=run,
    )
    return plan_next(run_id=run_id)


# --- a task: coder -> tester ------------------------------------------------------------------


def _task_step_spec(task: PlanTask, role: str, attempt: int) -> StepSpec:
    """The step of ``role`` for one attempt at a plan task (keyed for idempotency)."""
    return StepSpec(
        role=role,
        key=f"task:{task.key}:{role}:{attempt}",
        attempt=attempt,
        plan_task_id=task.id,
        input={"task": task.key},
    )


# Characters of each search and replace text kept in a coder's stored output.
EDIT_SHOWN_CHARS = 4000


def _edits_of(dumped: dict[str, Any]) -> list[dict[str, str]]:
    from projects.artifacts import artifact_path_normalize

    return [
        {
            "path": artifact_path_normalize(edit["path"]),
            "search": edit["search"],
            "replace": edit["replace"],
        }
        for edit in dumped.get("edits") or []
    ]


def _note_for(run_id: int, key: str, brief: dict[str, Any] | None = None) -> str:
    if brief is None:
        brief = step_output(run_id, "orchestrate") or {}
    return next((n["note"] for n in brief.get("notes", []) if n.get("task") == key), "")


def coder_context(
    *,
    run: Run,
    task: PlanTask,
    step_key: str,
    attempt: int,
    brief: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """What a coder sees: the design's summary and the interfaces touching its files, its
    task, the modules of the tasks it depends on (not their tests, not the other tasks'),
    the previous attempt's failures; trimmed to the context budget. In a follow-up run
    ``base_files`` holds the current content of the task's files that already exist (empty
    when the task only adds files): the coder edits them rather than starting over.
    ``brief`` is the orchestrator's stored output when the caller read it already."""
    design = run.design or {}
    context: dict[str, Any] = {"kind": "code", "run": run.id, "step": step_key}
    context["prompt"] = run.prompt
    context["attempt"] = attempt
    context["task"] = {
        "key": task.key,
        "title": task.title,
        "spec": task.spec,
        "files": task.files,
        "depends_on": task.depends_on,
    }
    deps = {p: c for p, c in dependency_files(task).items() if not _is_test(p)}
    context["design"] = ctx.design_brief(design, paths=set(task.files) | set(deps))
    context["note"] = _note_for(run.id, task.key, brief)
    context["dependencies"] = deps
    if attempt > 1:
        verdict = step_output(run.id, f"task:{task.key}:tester:{attempt - 1}") or {}
        previous = step_output(run.id, f"task:{task.key}:coder:{attempt - 1}") or {}
        context["feedback"] = verdict.get("failures") or [verdict.get("summary", "")]
        context["previous_files"] = previous.get("files") or {}
    if run.base_run_id is not None:
        base = task_base_tree(run, task)
        context["base_files"] = {path: base[path] for path in task.files if path in base}
        binary = sorted(set(task.files) & base_binary_paths(run))
        context["edit_rules"] = {
            "rewrite_max_lines": rewrite_max_lines(),
            "binary_files": binary,
        }
        if base_import(run) is not None:
            context["repository"] = {"origin": "import"}
    return ctx.fit(context, files_keys=("base_files", "dependencies", "previous_files"))


def task_code(*, run_id: int, plan_task_id: int, attempt: int) -> None:
    """Attempt ``attempt`` of a task's coder (with the previous attempt's failures)."""
    task, run, brief = task_with_run(run_id=run_id, plan_task_id=plan_task_id)

    def prepare(run: Run, step: Step) -> dict[str, Any]:
        context = coder_context(
            run=run, task=task, step_key=step.key, attempt=attempt, brief=brief or {}
        )
        messages = task_messages_take(step=step, plan_task_id=task.id)
        if messages:
            context["messages"] = messages
        return {
            "context": context,
            "chain": run_chain(run),
            # What edit blocks apply to: the files as this task finds them (a fresh run's
            # coders write whole files).
            "base": task_base_tree(run, task) if run.base_run_id is not None else {},
            "binary": base_binary_paths(run),
        }

    def execute(prepared: dict[str, Any], ledger: StepLedger) -> dict[str, Any]:
        answer = model_call(
            prompt=CODER,
            context=prepared["context"],
            ledger=ledger,
            chain=prepared["chain"],
            last=True,
        )
        dumped = answer.model_dump(mode="json")
        files = normalize_files(dumped["files"])
        deleted = normalize_paths(dumped.get("deleted") or [])
        edits = _edits_of(dumped)
        applied = edits_apply(
            base=prepared["base"],
            files=files,
            edits=edits,
            deleted=deleted,
            binary=prepared["binary"],
        )
        output: dict[str, Any] = {
            "files": applied.files,
            "deleted": [] if applied.errors else deleted,
            "notes": dumped.get("notes", ""),
        }
        if edits:
            output["edits"] = [
                {k: v if k == "path" else ctx.truncate(v, EDIT_SHOWN_CHARS) for k, v in e.items()}
                for e in edits
            ]
        if applied.errors:
            # A failed attempt: the tester says why, and the next coder gets it as feedback.
            output["edit_errors"] = applied.errors
        return output

    step_run(
        run_id=run_id,
        spec=_task_step_spec(task, "coder", attempt),
        prepare=prepare,
        execute=execute,
        run=run,
    )


def _is_test(path: str) -> bool:
    name = path.rsplit("/", 1)[-1]
    return name.startswith("test_") or name == "conftest.py" or "/tests/" in f"/{path}"


def edits_refused(errors: list[str]) -> dict[str, Any]:
    """The tester's verdict on an attempt whose edit blocks did not apply: failed, nothing run,
    no model asked; the reasons are the next coder's feedback."""
    return {
        "passed": False,
        "mode": "not run",
        "summary": f"{len(errors)} edit block(s) did not apply; nothing was run.",
        "failures": errors,
        "report": None,
        "regressions": [],
    }


def _task_result(coded: dict[str, Any], attempt: int, verdict: dict[str, Any]) -> dict[str, Any]:
    """A plan task's outcome: the attempt's files and deletions, and the tester's verdict."""
    return {
        "files": coded.get("files") or {},
        "deleted": coded.get("deleted") or [],
        "attempt": attempt,
        "verdict": verdict,
    }


def task_test(*, run_id: int, plan_task_id: int, attempt: int) -> Next | None:
    """The tester's verdict on attempt ``attempt``; red -> the next fix attempt (bounded)."""
    task, run, coded_stored = task_with_run(
        run_id=run_id, plan_task_id=plan_task_id, coder_attempt=attempt
    )
    max_attempts = int(run_option(run, "max_fix_attempts"))

    coded: dict[str, Any] = {}

    def prepare(run: Run, step: Step) -> dict[str, Any]:
        coded.update(coded_stored or {})
        if coded.get("edit_errors"):
            return {"edit_errors": coded["edit_errors"]}
        # The task's files on top of its dependencies' on top of the base tree (a follow-up).
        dep_files, dep_deleted = dependency_changes(task)
        files = tree_apply(base_files(run), files=dep_files, deleted=dep_deleted)
        files = tree_apply(
            files, files=coded.get("files") or {}, deleted=coded.get("deleted") or []
        )
        gone = [*dep_deleted, *(coded.get("deleted") or [])]
        context = base_context(run, step, "test")
        context["attempt"] = attempt
        context["task"] = {"key": task.key, "title": task.title, "spec": task.spec}
        return {
            "context": context,
            "files": {**base_binary(run, deleted=gone), **files},
            "own": coded.get("files") or {},
            "chain": run_chain(run),
            "baseline": baseline_for(run=run),
        }

    def execute(prepared: dict[str, Any], ledger: StepLedger) -> dict[str, Any]:
        if prepared.get("edit_errors"):
            return edits_refused(prepared["edit_errors"])
        report, mode = check_files(prepared["files"])
        if report is not None and prepared["baseline"] is not None:
            report = judge(report, prepared["baseline"])
        context = prepared["context"]
        context["mode"] = mode
        # The model reads the verdict and the failures, not the id of every test that ran
        # (nor the tree's digest).
        hidden = ("test_ids", "failing_ids", "tree_sha256")
        context["report"] = {k: v for k, v in report.items() if k not in hidden} if report else None
        context["files"] = prepared["own"]
        context = ctx.fit(context, files_keys=("files",))
        verdict = model_call(
            prompt=TESTER, context=context, ledger=ledger, chain=prepared["chain"], last=True
        ).model_dump(mode="json")
        passed = bool(verdict["passed"]) and (report is None or report["passed"])
        failures = list(verdict.get("failures") or [])
        if report is not None and not report["passed"] and not failures:
            failures = report["failures"] or [report["summary"]]
        regressions = list((report or {}).get("regressions") or [])
        if regressions:  # the ids go back to the coder whatever the model said
            failures = list(report["failures"]) if report else failures
        summary = verdict.get("summary", "")
        if mode == STATIC_REVIEW and not summary.lower().startswith(STATIC_REVIEW):
            summary = f"{STATIC_REVIEW}: {summary}"
        return {
            "passed": passed,
            "mode": mode,
            "summary": summary,
            "failures": failures,
            "report": report,
            "regressions": regressions,
        }

    def result_events(verdict: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
        payload = {
            "task": task.key,
            "attempt": attempt,
            "passed": verdict["passed"],
            "mode": verdict["mode"],
            "summary": verdict["summary"],
            "failures": verdict["failures"][:5],
            "regressions": (verdict.get("regressions") or [])[:20],
        }
        return [("test.result", payload)]

    def outcome(verdict: dict[str, Any]) -> tuple[str, dict[str, Any]] | None:
        """The task green, or red for good at the last attempt; None while it may be fixed."""
        if verdict.get("passed"):
            status = PlanTask.Status.SUCCEEDED
        elif attempt >= max_attempts:
            status = PlanTask.Status.FAILED
        else:
            return None
        return status, _task_result(coded, attempt, verdict)

    stored_now: list[bool] = []
    verdict = step_run(
        run_id=run_id,
        spec=_task_step_spec(task, "tester", attempt),
        prepare=prepare,
        execute=execute,
        events=result_events,
        # The task's outcome is stored with the verdict, committed before the claims below
        # (see plan_claim_ready).
        task_outcome=outcome,
        on_success=lambda step, verdict: stored_now.append(True),
        run=run,
    )
    if not coded:  # the verdict was stored before: prepare did not run
        coded = dict(coded_stored or {})
    decided = outcome(verdict)
    if decided is not None and not stored_now:  # a replay: the verdict was stored before
        PlanTask.objects.filter(id=task.id).update(status=decided[0], result=decided[1])
    if verdict.get("passed"):
        return plan_next(run_id=run_id)
    if attempt < max_attempts:
        return Next.tasks((task.id, attempt + 1))
    run_fail(
        run_id=run_id,
        code="max_fix_attempts",
        detail=f"Task {task.key} still fails after {attempt} attempt(s): "
        + "; ".join(verdict.get("failures") or [verdict.get("summary", "")])[:1000],
    )
    return None
