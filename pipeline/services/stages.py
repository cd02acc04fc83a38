"""The stages of a run, one function per canvas task: design, orchestrate, code, test,
integrate, finalize.

Each returns what the canvas should do next as a ``Next`` (or ``None`` when this branch of
the canvas ends), so the Celery tasks stay thin and ``pipeline.canvas`` alone builds
signatures. Every function is safe to run again: its steps answer from their rows.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from common.logging import get_logger

from .. import context as ctx
from ..models import PlanTask, Run, Step
from ..roles import (
    ARCHITECT,
    ARCHITECT_CONSULT,
    CODER,
    INTEGRATOR,
    ORCHESTRATOR,
    PLANNER,
    PLANNER_CONSULT,
    TESTER,
)
from .runs import RunStopped, emit, run_fail, run_set_status, stage_mark
from .steps import StepLedger, StepSpec, model_call, step_run

logger = get_logger(__name__)

STATIC_REVIEW = "static review"


@dataclass(frozen=True)
class Next:
    """What the canvas does after a task: ``kind`` names it, ``args`` parametrize it.

    Kinds: ``design`` (round), ``orchestrate``, ``layers`` (list of lists of plan task
    ids), ``fix`` (plan task id, attempt).
    """

    kind: str
    args: tuple = ()


def _chain(run: Run) -> list[str] | None:
    return (run.options or {}).get("providers") or None


def _option(run: Run, name: str) -> Any:
    defaults = {
        "max_design_rounds": settings.PIPELINE_MAX_DESIGN_ROUNDS,
        "max_fix_attempts": settings.PIPELINE_MAX_FIX_ATTEMPTS,
        "require_approval": settings.PIPELINE_REQUIRE_APPROVAL,
    }
    return (run.options or {}).get(name, defaults.get(name))


def _step_output(run_id: int, key: str) -> dict[str, Any] | None:
    return (
        Step.objects.filter(run_id=run_id, key=key, status=Step.Status.SUCCEEDED)
        .values_list("output", flat=True)
        .first()
    )


def _base_context(run: Run, step: Step, kind: str) -> dict[str, Any]:
    return {"kind": kind, "run": run.id, "step": step.key, "prompt": run.prompt}


# --- design ----------------------------------------------------------------------------------


def design_architect(*, run_id: int, round: int) -> None:  # noqa: A002
    """Round ``round`` of the design: the architect proposes (answering last objections)."""
    if run_set_status(
        run_id=run_id, status=Run.Status.DESIGNING, from_statuses=(Run.Status.QUEUED,)
    ):
        Run.objects.filter(id=run_id, started_at__isnull=True).update(started_at=timezone.now())
    stage_mark(run_id=run_id, stage="design", edge="started")

    def prepare(run: Run, step: Step) -> dict[str, Any]:
        context = _base_context(run, step, "design")
        context["round"] = round
        previous = _step_output(run_id, f"design:{round - 1}:planner") if round > 1 else None
        context["objections"] = (previous or {}).get("objections", [])
        earlier = _step_output(run_id, f"design:{round - 1}:architect") if round > 1 else None
        if earlier:
            context["previous_design"] = ctx.design_brief(earlier)
        return {"context": context, "chain": _chain(run)}

    def execute(prepared: dict[str, Any], ledger: StepLedger) -> dict[str, Any]:
        answer = model_call(
            prompt=ARCHITECT, context=prepared["context"], ledger=ledger, chain=prepared["chain"]
        )
        return answer.model_dump(mode="json")

    step_run(
        run_id=run_id,
        spec=StepSpec(role="architect", key=f"design:{round}:architect", round=round),
        prepare=prepare,
        execute=execute,
    )


def plan_layers(tasks: list[dict[str, Any]]) -> dict[str, int]:
    """Topological level of every task key; ``ValueError`` on unknown keys or cycles."""
    keys = [t["key"] for t in tasks]
    if len(set(keys)) != len(keys):
        raise ValueError("task keys must be unique")
    deps = {t["key"]: list(dict.fromkeys(t.get("depends_on") or [])) for t in tasks}
    for key, needs in deps.items():
        unknown = [d for d in needs if d not in deps]
        if unknown:
            raise ValueError(f"task {key} depends on unknown tasks {unknown}")
        if key in needs:
            raise ValueError(f"task {key} depends on itself")
    if not tasks:
        raise ValueError("an approved plan needs at least one task")
    layers: dict[str, int] = {}
    remaining = dict(deps)
    level = 0
    while remaining:
        ready = [k for k, needs in remaining.items() if all(d in layers for d in needs)]
        if not ready:
            raise ValueError(f"the tasks {sorted(remaining)} depend on each other in a cycle")
        for key in ready:
            layers[key] = level
            del remaining[key]
        level += 1
    return layers


def _plan_store(run_id: int, round: int, design: dict[str, Any], tasks: list[dict]) -> None:  # noqa: A002
    layers = plan_layers(tasks)
    for task in tasks:
        PlanTask.objects.get_or_create(
            run_id=run_id,
            key=task["key"],
            defaults={
                "title": task["title"][:300],
                "spec": task.get("spec", ""),
                "files": task.get("files") or [],
                "depends_on": list(dict.fromkeys(task.get("depends_on") or [])),
                "layer": layers[task["key"]],
            },
        )
    Run.objects.filter(id=run_id).update(design={"approved_round": round, **design, "plan": tasks})


def design_planner(*, run_id: int, round: int) -> Next | None:  # noqa: A002
    """Round ``round``: the planner objects (-> next round, bounded) or approves with a DAG."""
    run = Run.objects.get(id=run_id)
    max_rounds = int(_option(run, "max_design_rounds"))

    def prepare(run: Run, step: Step) -> dict[str, Any]:
        context = _base_context(run, step, "plan_review")
        context["round"] = round
        context["design"] = _step_output(run_id, f"design:{round}:architect") or {}
        return {"context": context, "chain": _chain(run)}

    def execute(prepared: dict[str, Any], ledger: StepLedger) -> dict[str, Any]:
        answer = model_call(
            prompt=PLANNER, context=prepared["context"], ledger=ledger, chain=prepared["chain"]
        )
        review = answer.model_dump(mode="json")
        if review["approved"]:
            try:
                plan_layers(review["tasks"])
            except ValueError as exc:
                # An unusable plan is no approval: the next round must fix it.
                review["approved"] = False
                review["objections"] = [*review["objections"], f"The plan is invalid: {exc}"]
        return review

    def on_success(step: Step, review: dict[str, Any]) -> None:
        design = _step_output(run_id, f"design:{round}:architect") or {}
        if review["approved"]:
            _plan_store(run_id, round, design, review["tasks"])
        emit(
            run_id=run_id,
            type="consensus.round",
            payload={
                "round": round,
                "approved": review["approved"],
                "objections": review["objections"],
                "resolutions": design.get("resolutions", []),
                "summary": design.get("summary", ""),
            },
        )

    review = step_run(
        run_id=run_id,
        spec=StepSpec(role="planner", key=f"design:{round}:planner", round=round),
        prepare=prepare,
        execute=execute,
        on_success=on_success,
    )
    if review.get("approved"):
        if not PlanTask.objects.filter(run_id=run_id).exists():  # replay after a crash
            design = _step_output(run_id, f"design:{round}:architect") or {}
            _plan_store(run_id, round, design, review["tasks"])
        stage_mark(run_id=run_id, stage="design", edge="completed")
        return Next("orchestrate")
    if round >= max_rounds:
        run_fail(
            run_id=run_id,
            code="max_design_rounds",
            detail=f"The planner did not approve the design in {max_rounds} round(s); last "
            f"objections: {'; '.join(review.get('objections') or [])[:1000]}",
        )
        return None
    return Next("design", (round + 1,))


# --- orchestrate -----------------------------------------------------------------------------


def _layers(run_id: int) -> list[list[PlanTask]]:
    layers: dict[int, list[PlanTask]] = {}
    for task in PlanTask.objects.filter(run_id=run_id).order_by("layer", "id"):
        layers.setdefault(task.layer, []).append(task)
    return [layers[index] for index in sorted(layers)]


def orchestrate(*, run_id: int) -> Next | None:
    """The approval gate, then the orchestrator's brief, then the layers' fan-out."""
    run = Run.objects.get(id=run_id)
    if run.status not in Run.ACTIVE:
        raise RunStopped(run_id)
    if _option(run, "require_approval") and run.approved_at is None:
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
    run_set_status(
        run_id=run_id,
        status=Run.Status.RUNNING,
        from_statuses=(Run.Status.QUEUED, Run.Status.DESIGNING),
    )
    Run.objects.filter(id=run_id, started_at__isnull=True).update(started_at=timezone.now())
    stage_mark(run_id=run_id, stage="coding", edge="started")
    layers = _layers(run_id)
    if not layers:
        run_fail(run_id=run_id, code="invalid_plan", detail="The approved plan has no tasks.")
        return None

    def prepare(run: Run, step: Step) -> dict[str, Any]:
        context = _base_context(run, step, "orchestrate")
        context["design"] = ctx.design_brief((run.design or {}), paths=set())
        context["layers"] = [
            [{"key": t.key, "title": t.title, "depends_on": t.depends_on} for t in layer]
            for layer in layers
        ]
        return {"context": context, "chain": _chain(run)}

    def execute(prepared: dict[str, Any], ledger: StepLedger) -> dict[str, Any]:
        answer = model_call(
            prompt=ORCHESTRATOR,
            context=prepared["context"],
            ledger=ledger,
            chain=prepared["chain"],
        )
        return answer.model_dump(mode="json")

    step_run(
        run_id=run_id,
        spec=StepSpec(role="orchestrator", key="orchestrate"),
        prepare=prepare,
        execute=execute,
    )
    return Next("layers", ([[t.id for t in layer] for layer in layers],))


# --- a task: coder -> tester ------------------------------------------------------------------


def _task_files(task: PlanTask) -> dict[str, str]:
    return dict((task.result or {}).get("files") or {})


def _dependency_files(task: PlanTask) -> dict[str, str]:
    files: dict[str, str] = {}
    for dep in PlanTask.objects.filter(run_id=task.run_id, key__in=task.depends_on):
        files.update(_task_files(dep))
    return files


def _note_for(run_id: int, key: str) -> str:
    brief = _step_output(run_id, "orchestrate") or {}
    return next((n["note"] for n in brief.get("notes", []) if n.get("task") == key), "")


def _normalize_files(items: list[dict[str, Any]]) -> dict[str, str]:
    from projects.artifacts import artifact_path_normalize

    return {artifact_path_normalize(item["path"]): item["content"] for item in items}


def task_code(*, run_id: int, plan_task_id: int, attempt: int) -> None:
    """Attempt ``attempt`` of a task's coder (with the previous attempt's failures)."""
    task = PlanTask.objects.get(id=plan_task_id)
    PlanTask.objects.filter(id=task.id, status=PlanTask.Status.PENDING).update(
        status=PlanTask.Status.RUNNING
    )

    def prepare(run: Run, step: Step) -> dict[str, Any]:
        design = run.design or {}
        context = _base_context(run, step, "code")
        context["attempt"] = attempt
        context["task"] = {
            "key": task.key,
            "title": task.title,
            "spec": task.spec,
            "files": task.files,
            "depends_on": task.depends_on,
        }
        deps = {p: c for p, c in _dependency_files(task).items() if not _is_test(p)}
        context["design"] = ctx.design_brief(design, paths=set(task.files) | set(deps))
        context["note"] = _note_for(run_id, task.key)
        context["dependencies"] = deps
        if attempt > 1:
            verdict = _step_output(run_id, f"task:{task.key}:tester:{attempt - 1}") or {}
            previous = _step_output(run_id, f"task:{task.key}:coder:{attempt - 1}") or {}
            context["feedback"] = verdict.get("failures") or [verdict.get("summary", "")]
            context["previous_files"] = previous.get("files") or {}
        return {
            "context": ctx.fit(context, files_keys=("dependencies", "previous_files")),
            "chain": _chain(run),
        }

    def execute(prepared: dict[str, Any], ledger: StepLedger) -> dict[str, Any]:
        answer = model_call(
            prompt=CODER, context=prepared["context"], ledger=ledger, chain=prepared["chain"]
        )
        dumped = answer.model_dump(mode="json")
        return {"files": _normalize_files(dumped["files"]), "notes": dumped.get("notes", "")}

    step_run(
        run_id=run_id,
        spec=StepSpec(
            role="coder",
            key=f"task:{task.key}:coder:{attempt}",
            attempt=attempt,
            plan_task_id=task.id,
            input={"task": task.key},
        ),
        prepare=prepare,
        execute=execute,
    )


def _is_test(path: str) -> bool:
    name = path.rsplit("/", 1)[-1]
    return name.startswith("test_") or name == "conftest.py" or "/tests/" in f"/{path}"


def _sandbox_checks() -> Any | None:
    """``projects.checks.run_test_checks`` when the sandbox may run tests, else None."""
    if not settings.SANDBOX_TESTS_ENABLED:
        return None
    try:
        from projects.checks import run_test_checks
    except ImportError:
        return None
    return run_test_checks


def _report_brief(report: dict[str, Any]) -> dict[str, Any]:
    tests = report.get("tests") or {}
    failing = tests.get("failing") or []
    failures = [f"{item.get('nodeid') or 'tests'}: {item.get('message', '')}" for item in failing]
    return {
        "passed": bool(report.get("passed")),
        "mode": report.get("mode"),
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


def check_files(files: dict[str, str]) -> tuple[dict[str, Any] | None, str]:
    """Run the sandbox checks on ``files``: (report brief, mode) or (None, static review)."""
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
    return _report_brief(data), "sandbox"


def task_test(*, run_id: int, plan_task_id: int, attempt: int) -> Next | None:
    """The tester's verdict on attempt ``attempt``; red -> the next fix attempt (bounded)."""
    task = PlanTask.objects.get(id=plan_task_id)
    run = Run.objects.get(id=run_id)
    max_attempts = int(_option(run, "max_fix_attempts"))

    def prepare(run: Run, step: Step) -> dict[str, Any]:
        coded = _step_output(run_id, f"task:{task.key}:coder:{attempt}") or {}
        files = {**_dependency_files(task), **(coded.get("files") or {})}
        context = _base_context(run, step, "test")
        context["attempt"] = attempt
        context["task"] = {"key": task.key, "title": task.title, "spec": task.spec}
        return {
            "context": context,
            "files": files,
            "own": coded.get("files") or {},
            "chain": _chain(run),
        }

    def execute(prepared: dict[str, Any], ledger: StepLedger) -> dict[str, Any]:
        report, mode = check_files(prepared["files"])
        context = prepared["context"]
        context["mode"] = mode
        context["report"] = report
        context["files"] = prepared["own"]
        context = ctx.fit(context, files_keys=("files",))
        verdict = model_call(
            prompt=TESTER, context=context, ledger=ledger, chain=prepared["chain"]
        ).model_dump(mode="json")
        passed = bool(verdict["passed"]) and (report is None or report["passed"])
        failures = list(verdict.get("failures") or [])
        if report is not None and not report["passed"] and not failures:
            failures = report["failures"] or [report["summary"]]
        summary = verdict.get("summary", "")
        if mode == STATIC_REVIEW and not summary.lower().startswith(STATIC_REVIEW):
            summary = f"{STATIC_REVIEW}: {summary}"
        return {
            "passed": passed,
            "mode": mode,
            "summary": summary,
            "failures": failures,
            "report": report,
        }

    def on_success(step: Step, verdict: dict[str, Any]) -> None:
        emit(
            run_id=run_id,
            type="test.result",
            payload={
                "task": task.key,
                "attempt": attempt,
                "passed": verdict["passed"],
                "mode": verdict["mode"],
                "summary": verdict["summary"],
                "failures": verdict["failures"][:5],
            },
        )

    verdict = step_run(
        run_id=run_id,
        spec=StepSpec(
            role="tester",
            key=f"task:{task.key}:tester:{attempt}",
            attempt=attempt,
            plan_task_id=task.id,
            input={"task": task.key},
        ),
        prepare=prepare,
        execute=execute,
        on_success=on_success,
    )
    coded = _step_output(run_id, f"task:{task.key}:coder:{attempt}") or {}
    if verdict.get("passed"):
        PlanTask.objects.filter(id=task.id).update(
            status=PlanTask.Status.SUCCEEDED,
            result={"files": coded.get("files") or {}, "attempt": attempt, "verdict": verdict},
        )
        return None
    if attempt < max_attempts:
        return Next("fix", (task.id, attempt + 1))
    PlanTask.objects.filter(id=task.id).update(
        status=PlanTask.Status.FAILED,
        result={"files": coded.get("files") or {}, "attempt": attempt, "verdict": verdict},
    )
    run_fail(
        run_id=run_id,
        code="max_fix_attempts",
        detail=f"Task {task.key} still fails after {attempt} attempt(s): "
        + "; ".join(verdict.get("failures") or [verdict.get("summary", "")])[:1000],
    )
    return None


def layer_done(*, run_id: int, layer: int, last: bool) -> None:
    """A layer's chord has finished: every task of it must have succeeded."""
    run = Run.objects.get(id=run_id)
    if run.status not in Run.ACTIVE:
        raise RunStopped(run_id)
    unfinished = list(
        PlanTask.objects.filter(run_id=run_id, layer=layer)
        .exclude(status=PlanTask.Status.SUCCEEDED)
        .values_list("key", flat=True)
    )
    if unfinished:
        run_fail(
            run_id=run_id,
            code="task_failed",
            detail=f"Tasks {unfinished} of layer {layer + 1} did not succeed.",
        )
        raise RunStopped(run_id)
    if last:
        stage_mark(run_id=run_id, stage="coding", edge="completed")


# --- integrate and finalize ---------------------------------------------------------------------


def _defines(content: str, name: str) -> bool:
    return bool(re.search(rf"^\s*(?:async\s+def|def|class)\s+{re.escape(name)}\b", content, re.M))


def find_conflicts(
    tasks: list[PlanTask], design: dict[str, Any]
) -> tuple[dict[str, str], list[dict[str, Any]]]:
    """Merge the tasks' files: (tree, conflicts).

    A path written by two tasks with different content is a ``path`` conflict (the tree
    keeps the owner's version for now); an interface of the design that its file does not
    define is an ``interface`` conflict.
    """
    tree: dict[str, str] = {}
    writers: dict[str, list[dict[str, Any]]] = {}
    for task in tasks:
        for path, content in _task_files(task).items():
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


def _consult(run_id: int, number: int, conflicts: list[dict[str, Any]]) -> dict[str, Any] | None:
    """Consult round ``number``: the architect resolves, the planner reviews."""

    def prepare_architect(run: Run, step: Step) -> dict[str, Any]:
        context = _base_context(run, step, "consult_architect")
        context["round"] = number
        context["design"] = ctx.design_brief(run.design or {})
        context["conflicts"] = conflicts
        if number > 1:
            last = _step_output(run_id, f"integrate:consult:{number - 1}:planner") or {}
            context["objections"] = last.get("objections", [])
        return {"context": context, "chain": _chain(run)}

    def execute_architect(prepared: dict[str, Any], ledger: StepLedger) -> dict[str, Any]:
        answer = model_call(
            prompt=ARCHITECT_CONSULT,
            context=prepared["context"],
            ledger=ledger,
            chain=prepared["chain"],
        ).model_dump(mode="json")
        return {"rationale": answer["rationale"], "files": _normalize_files(answer["files"])}

    resolution = step_run(
        run_id=run_id,
        spec=StepSpec(role="architect", key=f"integrate:consult:{number}:architect", round=number),
        prepare=prepare_architect,
        execute=execute_architect,
    )

    def prepare_planner(run: Run, step: Step) -> dict[str, Any]:
        context = _base_context(run, step, "consult_planner")
        context["round"] = number
        context["conflicts"] = [
            {k: v for k, v in c.items() if k not in ("candidates", "content")} for c in conflicts
        ]
        context["resolution"] = resolution
        return {"context": ctx.fit(context, files_keys=()), "chain": _chain(run)}

    def execute_planner(prepared: dict[str, Any], ledger: StepLedger) -> dict[str, Any]:
        return model_call(
            prompt=PLANNER_CONSULT,
            context=prepared["context"],
            ledger=ledger,
            chain=prepared["chain"],
        ).model_dump(mode="json")

    review = step_run(
        run_id=run_id,
        spec=StepSpec(role="planner", key=f"integrate:consult:{number}:planner", round=number),
        prepare=prepare_planner,
        execute=execute_planner,
    )
    return resolution if review.get("approved") else None


def _suite(run_id: int, number: int, tree: dict[str, str]) -> dict[str, Any]:
    """The combined test suite of the merged tree (a tester step without a model call)."""

    def prepare(run: Run, step: Step) -> dict[str, Any]:
        return {"files": tree}

    def execute(prepared: dict[str, Any], ledger: StepLedger) -> dict[str, Any]:
        report, mode = check_files(prepared["files"])
        return {"mode": mode, "report": report, "passed": report is None or report["passed"]}

    def on_success(step: Step, result: dict[str, Any]) -> None:
        emit(
            run_id=run_id,
            type="test.result",
            payload={
                "task": None,
                "suite": "integration",
                "attempt": number,
                "passed": result["passed"],
                "mode": result["mode"],
                "summary": (result["report"] or {}).get("summary", STATIC_REVIEW),
            },
        )

    return step_run(
        run_id=run_id,
        spec=StepSpec(role="tester", key=f"integrate:suite:{number}", attempt=number),
        prepare=prepare,
        execute=execute,
        on_success=on_success,
    )


def integrate(*, run_id: int) -> None:
    """Merge the tasks' files; resolve conflicts and red combined tests through consults."""
    run = Run.objects.get(id=run_id)
    if run.status not in Run.ACTIVE:
        raise RunStopped(run_id)
    run_set_status(
        run_id=run_id,
        status=Run.Status.INTEGRATING,
        from_statuses=(Run.Status.RUNNING, Run.Status.QUEUED, Run.Status.DESIGNING),
    )
    stage_mark(run_id=run_id, stage="integrate", edge="started")
    design = run.design or {}
    tasks = list(PlanTask.objects.filter(run_id=run_id).order_by("layer", "id"))
    tree, conflicts = find_conflicts(tasks, design)
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
            resolution = _consult(run_id, number, problems)
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
        suite = _suite(run_id, number + 1, tree)
        if suite.get("passed"):
            break
        report = suite.get("report") or {}
        suite_failures = [{"type": "tests", "path": None, "failures": report.get("failures") or []}]

    tree_step = _integrator(run_id, tree)
    for path, content in (tree_step.get("files") or {}).items():
        tree.setdefault(path, content)
    Step.objects.update_or_create(
        run_id=run_id,
        key="integrate:tree",
        defaults={
            "role": "integrator",
            "status": Step.Status.SUCCEEDED,
            "output": {"files": tree},
            "started_at": timezone.now(),
            "finished_at": timezone.now(),
        },
    )
    stage_mark(run_id=run_id, stage="integrate", edge="completed")


def _integrator(run_id: int, tree: dict[str, str]) -> dict[str, Any]:
    def prepare(run: Run, step: Step) -> dict[str, Any]:
        context = _base_context(run, step, "integrate")
        context["design"] = ctx.design_brief(run.design or {}, paths=set())
        context["tree"] = sorted(tree)
        context["tasks"] = list(
            PlanTask.objects.filter(run_id=run_id).values("key", "title", "layer")
        )
        return {"context": context, "chain": _chain(run)}

    def execute(prepared: dict[str, Any], ledger: StepLedger) -> dict[str, Any]:
        answer = model_call(
            prompt=INTEGRATOR, context=prepared["context"], ledger=ledger, chain=prepared["chain"]
        ).model_dump(mode="json")
        return {"summary": answer["summary"], "files": _normalize_files(answer["files"])}

    return step_run(
        run_id=run_id,
        spec=StepSpec(role="integrator", key="integrate:integrator"),
        prepare=prepare,
        execute=execute,
    )


def finalize(*, run_id: int) -> None:
    """Store the tree as the run's artifacts and complete the run (its final event)."""
    from projects.artifacts import artifact_store_tree

    run = Run.objects.get(id=run_id)
    if run.status not in Run.ACTIVE:
        raise RunStopped(run_id)
    stage_mark(run_id=run_id, stage="finalize", edge="started")
    files = (_step_output(run_id, "integrate:tree") or {}).get("files") or {}
    if not files:
        run_fail(run_id=run_id, code="no_files", detail="Integration produced no files.")
        raise RunStopped(run_id)
    with transaction.atomic():
        artifacts = artifact_store_tree(run=run, files=files)
        stage_mark(run_id=run_id, stage="finalize", edge="completed")
        completed = Run.objects.filter(id=run_id, status__in=Run.ACTIVE).update(
            status=Run.Status.COMPLETED, finished_at=timezone.now(), heartbeat_at=timezone.now()
        )
        if completed:
            run.refresh_from_db()
            emit(
                run_id=run_id,
                type="run.completed",
                payload={
                    "artifacts": len(artifacts),
                    "files_url": f"/projects/{run.project_id}/files?run={run_id}",
                    "download_url": f"/projects/{run.project_id}/download?run={run_id}",
                    "tokens_in": run.tokens_in,
                    "tokens_out": run.tokens_out,
                    "cost_usd": str(run.cost_usd),
                },
            )
    logger.info("run.completed", run_id=run_id, artifacts=len(artifacts))
