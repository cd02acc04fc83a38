"""What the platform did for a run, read back from its rows: a ``Trace`` of its steps.

Each step depends on what the pipeline makes it wait for: the architect of round r on the
planner of round r-1, the planner on its architect, the orchestrator on the last planner, a
task's first coder on the final tester of each task it depends on (or the orchestrator), a
tester on its coder, a fix attempt's coder on the previous tester, the first integration step
on every task's final tester and each later one on the one before. The trace begins when the
run was created (the POST) and ends when it finished (its final status).
"""

from __future__ import annotations

import re
from typing import Any

from .shape import Shape, Span, Task, Trace

_TASK_STEP = re.compile(r"^task:(?P<task>.+):(?P<role>coder|tester):(?P<attempt>\d+)$")
_DESIGN_STEP = re.compile(r"^design:(?P<round>\d+):(?P<role>architect|planner)$")


def step_deps(keys: list[str], depends_on: dict[str, list[str]]) -> dict[str, tuple[str, ...]]:
    """The keys each step key waits for (``keys`` in start order; ``depends_on`` per task)."""
    present = set(keys)
    rounds = [int(m["round"]) for k in keys if (m := _DESIGN_STEP.match(k))]
    last_planner = f"design:{max(rounds)}:planner" if rounds else None
    attempts: dict[str, int] = {}
    for key in keys:
        match = _TASK_STEP.match(key)
        if match and match["role"] == "tester":
            attempts[match["task"]] = max(attempts.get(match["task"], 0), int(match["attempt"]))
    final_tester = {task: f"task:{task}:tester:{n}" for task, n in attempts.items()}
    deps: dict[str, tuple[str, ...]] = {}
    previous_integration: str | None = None
    for key in keys:
        if match := _DESIGN_STEP.match(key):
            number = int(match["round"])
            if match["role"] == "planner":
                deps[key] = (f"design:{number}:architect",)
            else:
                deps[key] = (f"design:{number - 1}:planner",) if number > 1 else ()
        elif key == "orchestrate":
            deps[key] = (last_planner,) if last_planner else ()
        elif match := _TASK_STEP.match(key):
            task, attempt = match["task"], int(match["attempt"])
            if match["role"] == "tester":
                deps[key] = (f"task:{task}:coder:{attempt}",)
            elif attempt > 1:
                deps[key] = (f"task:{task}:tester:{attempt - 1}",)
            else:
                needs = [final_tester.get(d, f"task:{d}:tester:1") for d in depends_on[task]]
                deps[key] = tuple(needs) or ("orchestrate",)
        elif key.startswith("integrate:"):
            deps[key] = (
                (previous_integration,)
                if previous_integration
                else tuple(sorted(final_tester.values()))
            )
            previous_integration = key
        else:
            deps[key] = ()
    return {key: tuple(d for d in found if d in present) for key, found in deps.items()}


def run_trace(run_id: int) -> Trace:
    """The run's steps as a trace (steps without both timestamps are left out)."""
    from pipeline.models import PlanTask, Run, Step

    run = Run.objects.get(id=run_id)
    steps = list(
        Step.objects.filter(run_id=run_id, started_at__isnull=False, finished_at__isnull=False)
        .exclude(key="integrate:tree")  # a record of the merged tree, not a step that ran
        .order_by("started_at", "id")
        .values("key", "started_at", "finished_at")
    )
    depends_on = dict(PlanTask.objects.filter(run_id=run_id).values_list("key", "depends_on"))
    deps = step_deps([s["key"] for s in steps], depends_on)
    end = run.finished_at or max((s["finished_at"] for s in steps), default=run.created_at)
    return Trace(
        begin=run.created_at.timestamp(),
        end=end.timestamp(),
        spans=[
            Span(
                s["key"], deps[s["key"]], s["started_at"].timestamp(), s["finished_at"].timestamp()
            )
            for s in steps
        ],
    )


def default_plan_shape(latency_ms: int) -> Shape:
    """The offline model's own plan (core and storage, then cli), every call ``latency_ms``."""
    equal = latency_ms
    return Shape(
        name=f"offline default plan: 3 tasks in 2 layers, every call {latency_ms} ms",
        design_ms=(equal, equal, equal),
        tasks=(
            Task("core", 0, (), equal, equal),
            Task("storage", 0, (), equal, equal),
            Task("cli", 1, ("core", "storage"), equal, equal),
        ),
        integrate_ms=equal,
    )


def run_counts(run_id: int) -> dict[str, Any]:
    """Steps, model calls billed, and the offline model's answered calls of a run."""
    from django.db.models import Sum

    from pipeline.models import Step
    from providers.offline.answers import calls_for

    billed = Step.objects.filter(run_id=run_id).aggregate(n=Sum("llm_calls"))["n"] or 0
    answered = calls_for(run_id)
    return {
        "steps": Step.objects.filter(run_id=run_id).count(),
        "llm_calls": billed,
        "offline_calls": sum(answered.values()),
    }
