"""Integration and finalize: merge the tasks' files, resolve conflicts through consults,
run the combined suite, store the artifacts, complete the run.

A follow-up run integrates the FULL new tree: its base run's tree, less the files its tasks
deleted, with the files they wrote on top; the whole suite of that tree runs, and that tree
becomes the run's artifacts.
"""

from __future__ import annotations

import re
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from common.logging import get_logger

from ... import context as ctx
from ...models import PlanTask, Run, Step
from ...regressions import baseline_for, judge
from ...roles import ARCHITECT_CONSULT, INTEGRATOR, PLANNER_CONSULT
from ..run_state import RunStopped, emit, run_complete, run_fail, run_read, stage_mark
from ..steps import StageEdge, StepLedger, StepSpec, model_call, step_run
from .checks import check_files, report_for_tree
from .common import (
    STATIC_REVIEW,
    base_binary,
    base_context,
    base_files,
    base_import,
    normalize_files,
    plan_tasks,
    run_chain,
    step_output,
)
from .task_reads import task_deleted, task_files

logger = get_logger(__name__)


def _defines(content: str, name: str) -> bool:
    return bool(re.search(rf"^\s*(?:async\s+def|def|class)\s+{re.escape(name)}\b", content, re.M))


def find_conflicts(
    tasks: list[PlanTask], design: dict[str, Any], *, base: dict[str, str] | None = None
) -> tuple[dict[str, str], list[dict[str, Any]]]:
    """Merge the tasks' files over ``base`` (a follow-up's base tree): (tree, conflicts).

    The tree is ``base`` less the files the tasks deleted, with the files they wrote on top
    (a file one task writes stays even if another deletes it: a deletion removes a file of
    the base). A path written by two tasks with different content is a ``path`` conflict
    (the tree keeps the owner's version for now); an interface of the design that its file
    does not define is an ``interface`` conflict.
    """
    deleted = {path for task in tasks for path in task_deleted(task)}
    tree: dict[str, str] = {p: c for p, c in (base or {}).items() if p not in deleted}
    writers: dict[str, list[dict[str, Any]]] = {}
    for task in tasks:
        for path, content in task_files(task).items():
            writers.setdefault(path, []).append(
                {"task": task.key, "content": content, "owner": path in task.files}
            )
    conflicts: list[dict[str, Any]] = []
    for path, candidates in writers.items():
        contents = {c["content"] for c in candidates}
        owner = next((c for c in candidates if c["owner"]), candidates[0])
        tree[path] = owner["content"]
        if len(contents) > 1:
            conflicts.append({"type": "path", "path": path, "candidates": candidates})
    for interface in design.get("interfaces") or []:
        path, name = interface.get("path"), interface.get("name")
        if not path or not name or not str(path).endswith(".py"):
            continue
        content = tree.get(path, "")
        if not _defines(content, name):
            conflicts.append(
                {
                    "type": "interface",
                    "path": path,
                    "name": name,
                    "signature": interface.get("signature", ""),
                    "content": content,
                }
            )
    return tree, conflicts


def _interface_conflicts(tree: dict[str, str], design: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        {
            "type": "interface",
            "path": i["path"],
            "name": i["name"],
            "signature": i.get("signature", ""),
            "content": tree.get(i["path"], ""),
        }
        for i in design.get("interfaces") or []
        if str(i.get("path", "")).endswith(".py")
        and not _defines(tree.get(i["path"], ""), i["name"])
    ]


def _trimmed(conflicts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The conflicts with their file contents cut to a share of the context budget."""
    texts = sum(1 + len(c.get("candidates") or []) for c in conflicts) or 1
    share = max(ctx.budget_chars() // (2 * texts), 400)
    trimmed = []
    for conflict in conflicts:
        item = dict(conflict)
        if "content" in item:
            item["content"] = ctx.truncate(str(item["content"]), share)
        if "candidates" in item:
            item["candidates"] = [
                {**c, "content": ctx.truncate(str(c.get("content", "")), share)}
                for c in item["candidates"]
            ]
        trimmed.append(item)
    return trimmed


def _consult(run: Run, number: int, conflicts: list[dict[str, Any]]) -> dict[str, Any] | None:
    """Consult round ``number``: the architect resolves, the planner reviews."""
    run_id = run.id

    def prepare_architect(run: Run, step: Step) -> dict[str, Any]:
        context = base_context(run, step, "consult_architect")
        context["round"] = number
        context["design"] = ctx.design_brief(run.design or {})
        context["conflicts"] = _trimmed(conflicts)
        if number > 1:
            last = step_output(run_id, f"integrate:consult:{number - 1}:planner") or {}
            context["objections"] = last.get("objections", [])
        return {"context": context, "chain": run_chain(run)}

    def execute_architect(prepared: dict[str, Any], ledger: StepLedger) -> dict[str, Any]:
        answer = model_call(
            prompt=ARCHITECT_CONSULT,
            context=prepared["context"],
            ledger=ledger,
            chain=prepared["chain"],
            last=True,
        ).model_dump(mode="json")
        return {"rationale": answer["rationale"], "files": normalize_files(answer["files"])}

    resolution = step_run(
        run_id=run_id,
        spec=StepSpec(role="architect", key=f"integrate:consult:{number}:architect", round=number),
        prepare=prepare_architect,
        execute=execute_architect,
        run=run,
    )

    def prepare_planner(run: Run, step: Step) -> dict[str, Any]:
        context = base_context(run, step, "consult_planner")
        context["round"] = number
        context["conflicts"] = [
            {k: v for k, v in c.items() if k not in ("candidates", "content")} for c in conflicts
        ]
        context["resolution"] = resolution
        return {"context": ctx.fit(context, files_keys=()), "chain": run_chain(run)}

    def execute_planner(prepared: dict[str, Any], ledger: StepLedger) -> dict[str, Any]:
        return model_call(
            prompt=PLANNER_CONSULT,
            context=prepared["context"],
            ledger=ledger,
            chain=prepared["chain"],
            last=True,
        ).model_dump(mode="json")

    review = step_run(
        run_id=run_id,
        spec=StepSpec(role="planner", key=f"integrate:consult:{number}:planner", round=number),
        prepare=prepare_planner,
        execute=execute_planner,
        run=run,
    )
    return resolution if review.get("approved") else None


def _suite(
    run: Run,
    number: int,
    tree: dict[str, str],
    deleted: set[str],
    *,
    tasks: list[PlanTask],
    edge: StageEdge | None = None,
) -> dict[str, Any]:
    """The combined test suite of the merged tree (a tester step without a model call); on an
    imported repository judged against its baseline (``pipeline.regressions``). ``edge`` is
    integration's start, when this is its first step.

    When a task's green tester already ran the checks on exactly this tree (the last task
    depends on every other one), its report is the suite's (``reused_from`` names the task):
    the same files give the same round, run once."""

    def prepare(run: Run, step: Step) -> dict[str, Any]:
        binary = base_binary(run, deleted=sorted(deleted))
        return {"files": {**binary, **tree}, "baseline": baseline_for(run=run)}

    def execute(prepared: dict[str, Any], ledger: StepLedger) -> dict[str, Any]:
        # Only the first suite: a later one follows a red suite, whose tree is checked again.
        reports = {task.key: _task_report(task) for task in tasks} if number == 1 else {}
        reused = report_for_tree(prepared["files"], reports)
        reused_from = reused[0] if reused else None
        if reused is None:
            report, mode = check_files(prepared["files"])
        else:
            report, mode = reused[1], "sandbox"  # only a round run in the sandbox names its tree
        if report is not None and prepared["baseline"] is not None:
            report = judge(report, prepared["baseline"])
        return {
            "mode": mode,
            "report": report,
            "passed": report is None or report["passed"],
            "regressions": (report or {}).get("regressions") or [],
            **({"reused_from": reused_from} if reused_from else {}),
        }

    def result_events(result: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
        payload = {
            "task": None,
            "suite": "integration",
            "attempt": number,
            "passed": result["passed"],
            "mode": result["mode"],
            "summary": (result["report"] or {}).get("summary", STATIC_REVIEW),
            "regressions": (result.get("regressions") or [])[:20],
        }
        return [("test.result", payload)]

    return step_run(
        run_id=run.id,
        spec=StepSpec(role="tester", key=f"integrate:suite:{number}", attempt=number, edge=edge),
        prepare=prepare,
        execute=execute,
        events=result_events,
        run=run,
    )


def _task_report(task: PlanTask) -> dict[str, Any] | None:
    """The report of a task's last tester (stored with its outcome), or None."""
    return ((task.result or {}).get("verdict") or {}).get("report")


def integrate(*, run_id: int) -> None:
    """Merge the tasks' files (over the base tree of a follow-up); resolve conflicts and red
    combined tests through consults; the whole suite of the merged tree must pass."""
    run = run_read(run_id=run_id)
    if run.status not in Run.ACTIVE:
        raise RunStopped(run_id)
    # A fork may start here: its run has not started before.
    started: StageEdge | None = StageEdge(
        stage="integrate",
        edge="started",
        status=Run.Status.INTEGRATING,
        from_statuses=(Run.Status.RUNNING, Run.Status.QUEUED, Run.Status.DESIGNING),
        started=True,
    )
    design = run.design or {}
    tasks = plan_tasks(run_id)
    tree, conflicts = find_conflicts(tasks, design, base=base_files(run))
    if conflicts and started is not None:  # before the conflicts' event; else with the suite
        started.mark(run_id)
        started = None
    deleted = {path for task in tasks for path in task_deleted(task)}
    max_consults = int(settings.PIPELINE_MAX_CONSULT_ROUNDS)
    number = 0
    suite_failures: list[dict[str, Any]] = []
    while True:
        problems = conflicts + suite_failures
        if problems:
            number += 1
            if number > max_consults:
                run_fail(
                    run_id=run_id,
                    code="max_consult_rounds",
                    detail=f"Integration still has {len(problems)} problem(s) after "
                    f"{max_consults} consult round(s): "
                    + "; ".join(f"{p['type']} {p.get('path', '')}".strip() for p in problems),
                )
                raise RunStopped(run_id)
            emit(
                run_id=run_id,
                type="integration.conflicts",
                payload={
                    "round": number,
                    "conflicts": [
                        {"type": p["type"], "path": p.get("path"), "name": p.get("name")}
                        for p in problems
                    ],
                },
            )
            resolution = _consult(run, number, problems)
            if resolution is not None:
                tree.update(resolution.get("files") or {})
                resolved = set((resolution.get("files") or {}).keys())
                conflicts = [
                    c for c in conflicts if c["type"] != "path" or c["path"] not in resolved
                ]
                conflicts = [c for c in conflicts if c["type"] == "path"] + _interface_conflicts(
                    tree, design
                )
                suite_failures = []
            continue
        suite = _suite(run, number + 1, tree, deleted, tasks=tasks, edge=started)
        started = None
        if suite.get("passed"):
            break
        report = suite.get("report") or {}
        suite_failures = [
            {
                "type": "tests",
                "path": None,
                "failures": report.get("failures") or [],
                "regressions": suite.get("regressions") or [],
            }
        ]

    tree_step = _integrator(run, tree, tasks)
    # An imported repository gets what its tasks changed, nothing the integrator adds.
    if base_import(run) is None:
        for path, content in (tree_step.get("files") or {}).items():
            tree.setdefault(path, content)
    # One upsert: a replayed integration stores the tree again over the row it left.
    now = timezone.now()
    Step.objects.bulk_create(
        [
            Step(
                run_id=run_id,
                key="integrate:tree",
                role="integrator",
                status=Step.Status.SUCCEEDED,
                output={"files": tree},
                started_at=now,
                finished_at=now,
            )
        ],
        update_conflicts=True,
        unique_fields=["run", "key"],
        update_fields=["role", "status", "output", "started_at", "finished_at"],
    )
    stage_mark(run_id=run_id, stage="integrate", edge="completed")


def _integrator(run: Run, tree: dict[str, str], tasks: list[PlanTask]) -> dict[str, Any]:
    def prepare(run: Run, step: Step) -> dict[str, Any]:
        context = base_context(run, step, "integrate")
        context["design"] = ctx.design_brief(run.design or {}, paths=set())
        context["tree"] = sorted(tree)
        context["tasks"] = [
            {"key": task.key, "title": task.title, "layer": task.layer} for task in tasks
        ]
        return {"context": context, "chain": run_chain(run)}

    def execute(prepared: dict[str, Any], ledger: StepLedger) -> dict[str, Any]:
        answer = model_call(
            prompt=INTEGRATOR,
            context=prepared["context"],
            ledger=ledger,
            chain=prepared["chain"],
            last=True,
        ).model_dump(mode="json")
        return {"summary": answer["summary"], "files": normalize_files(answer["files"])}

    return step_run(
        run_id=run.id,
        spec=StepSpec(role="integrator", key="integrate:integrator"),
        prepare=prepare,
        execute=execute,
        run=run,
    )


def _carry_binary(run: Run, *, written: set[str]) -> list[Any]:
    """The base tree's binary files no task deleted, in the run's tree too: the same blobs,
    never read (a model never saw or changed them)."""
    from projects.artifacts import artifact_copy

    if run.base_run_id is None:
        return []
    tasks = PlanTask.objects.filter(run_id=run.pk)
    deleted = {path for task in tasks for path in task_deleted(task)}
    return artifact_copy(
        run=run,
        from_run=Run(id=run.base_run_id),
        binary=True,
        exclude=deleted | written,
    )


def finalize(*, run_id: int) -> None:
    """Store the tree as the run's artifacts and complete the run (its final event)."""
    from projects.artifacts import artifact_store_tree

    from ...events import publish_files_written

    run = run_read(run_id=run_id)
    if run.status not in Run.ACTIVE:
        raise RunStopped(run_id)
    files = (step_output(run_id, "integrate:tree") or {}).get("files") or {}
    if not files:
        stage_mark(run_id=run_id, stage="finalize", edge="started")
        run_fail(run_id=run_id, code="no_files", detail="Integration produced no files.")
        raise RunStopped(run_id)
    with transaction.atomic():
        # The stage's start locks the run's row, the lock storing the tree takes first.
        stage_mark(run_id=run_id, stage="finalize", edge="started")
        artifacts = artifact_store_tree(
            run=run, files=files, on_written=publish_files_written, run_locked=True
        )
        artifacts += _carry_binary(run, written=set(files))
        # The run's usage as the run was read above: no model is called after integration.
        completed = run_complete(
            run_id=run_id,
            stage="finalize",
            payload={
                "artifacts": len(artifacts),
                "files_url": f"/projects/{run.project_id}/files?run={run_id}",
                "download_url": f"/projects/{run.project_id}/download?run={run_id}",
                "tokens_in": run.tokens_in,
                "tokens_out": run.tokens_out,
                "cost_usd": str(run.cost_usd),
            },
        )
        if completed:
            # A delivery asked for at generate time (or by a review comment) goes now.
            from ...delivery.services import delivery_on_run_completed

            delivery_on_run_completed(run_id=run_id)
    logger.info("run.completed", run_id=run_id, artifacts=len(artifacts))
