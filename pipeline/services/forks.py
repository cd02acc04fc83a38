"""Forks: a new run that takes over a run's finished work up to a point, then goes on.

``run_fork`` copies every succeeded step of the source run before the fork point into the
new run as a reused row (``reused=True``, ``reused_from`` = the step it copies): such a
step answers from its row, so no model is asked again, and its tokens and cost are not
added to the new run's totals. What later stages read of those steps is copied with them
(the approved design, the plan's tasks, the results of tasks taken over whole). The new
run then goes on from the fork point through ``canvas_dispatch(start=...)`` with its own
options (by default the source's, overridden by the ones given, validated like a new
run's). The source run is only read.

Fork points, in the order a run goes through them:

- ``design``: nothing is taken over; the run designs anew (same prompt, same base run);
- ``orchestrate``: the design rounds (the approved design and its plan);
- ``coding``: the design rounds and the orchestrator's brief;
- ``integrate``: all of that and every task's steps; tasks that succeeded in the source
  are taken over whole, the others go on from their last succeeded step;
- a step key of the source: what came before that step. In a design round, the rounds
  before it (and its architect, for its planner); in a task, that task's earlier attempts
  (and the coder of the same attempt, for its tester), with every other task taken over
  unless it depends on that task, directly or not; in integration, every task and the
  integration steps before it.

A failed or cancelled source (say, a worker killed mid-coding) forks like any other: only
its steps that succeeded are taken over.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from django.db import transaction
from django.utils import timezone

from common.errors import ApplicationError
from common.logging import get_logger

from ..events import publish
from ..flow import INTEGRATE, ORCHESTRATE, Next
from ..models import PlanTask, Run, Step
from .runs import run_create, run_options_validate

logger = get_logger(__name__)

# The stages a run may be forked from, in the order the run goes through them.
FORK_STAGES = ("design", "orchestrate", "coding", "integrate")
# The stage each kind of step key belongs to.
_STAGE_OF_PREFIX = {"design": "design", "orchestrate": "orchestrate", "task": "coding"}
# Written by integration itself, never taken over.
_INTEGRATED_TREE = "integrate:tree"


class InvalidForkPoint(ApplicationError):
    """``from`` names neither a stage nor a step of the source run, or the run cannot go on
    from there."""

    code = "invalid_fork_point"


def step_stage(key: str) -> str:
    """The stage a step key belongs to: design, orchestrate, coding or integrate."""
    return _STAGE_OF_PREFIX.get(key.split(":", 1)[0], "integrate")


@dataclass
class ForkPlan:
    """What a fork takes over from its source, and where its canvas starts."""

    start: Next
    steps: list[Step] = field(default_factory=list)
    # Plan task keys taken over whole (succeeded in the source, with their result).
    tasks_done: set[str] = field(default_factory=set)
    copy_plan: bool = False


def _downstream(tasks: list[PlanTask], key: str) -> set[str]:
    """``key`` and every task that depends on it, directly or not."""
    found = {key}
    changed = True
    while changed:
        changed = False
        for task in tasks:
            if task.key not in found and found.intersection(task.depends_on):
                found.add(task.key)
                changed = True
    return found


def _task_step_parts(key: str) -> tuple[str, str, int]:
    """``task:<key>:<role>:<attempt>`` as (task key, role, attempt)."""
    _, rest = key.split(":", 1)
    task_key, role, attempt = rest.rsplit(":", 2)
    return task_key, role, int(attempt)


def _keeps_before_task_step(step: Step, task_key: str, role: str, attempt: int) -> bool:
    """Whether ``step`` (of the forked task) comes before ``role`` of attempt ``attempt``."""
    _, step_role, step_attempt = _task_step_parts(step.key)
    if step_attempt != attempt:
        return step_attempt < attempt
    return role == "tester" and step_role == "coder"


def fork_plan(*, source: Run, point: str) -> ForkPlan:
    """What a fork of ``source`` from ``point`` takes over (see the module docstring)."""
    all_steps = list(Step.objects.filter(run=source).select_related("plan_task").order_by("id"))
    by_key = {step.key: step for step in all_steps}
    if point not in FORK_STAGES and point not in by_key:
        raise InvalidForkPoint(
            f"Fork from one of {', '.join(FORK_STAGES)} or a step key of run {source.pk}; "
            f"{point!r} is neither."
        )
    succeeded = [
        step
        for step in all_steps
        if step.status == Step.Status.SUCCEEDED and step.key != _INTEGRATED_TREE
    ]
    stage = point if point in FORK_STAGES else step_stage(point)
    if point == "design":
        return ForkPlan(start=Next.design(1))
    if stage == "design":
        round_ = by_key[point].round
        before = [
            s
            for s in succeeded
            if step_stage(s.key) == "design"
            and (s.round < round_ or (s.round == round_ and point.endswith(":planner")
                                      and s.role == "architect"))
        ]  # fmt: skip
        return ForkPlan(start=Next.design(round_), steps=before)

    tasks = list(PlanTask.objects.filter(run=source))
    if not source.design or not tasks:
        raise InvalidForkPoint(
            f"Run {source.pk} has no approved plan to go on from: fork it from design.",
        )
    plan = ForkPlan(start=ORCHESTRATE, copy_plan=True)
    design_steps = [s for s in succeeded if step_stage(s.key) == "design"]
    if stage == "orchestrate":
        plan.steps = design_steps
        return plan
    orchestrate = [s for s in succeeded if s.key == "orchestrate"]
    if stage == "coding" and point in FORK_STAGES:
        plan.steps = design_steps + orchestrate
        return plan
    task_steps = [s for s in succeeded if step_stage(s.key) == "coding"]
    if stage == "coding":
        task_key, role, attempt = _task_step_parts(point)
        redone = _downstream(tasks, task_key)
        kept = [
            s
            for s in task_steps
            if s.plan_task is not None
            and (
                s.plan_task.key not in redone
                or (
                    s.plan_task.key == task_key
                    and _keeps_before_task_step(s, task_key, role, attempt)
                )
            )
        ]
        plan.steps = design_steps + orchestrate + kept
        plan.tasks_done = {
            t.key for t in tasks if t.status == PlanTask.Status.SUCCEEDED and t.key not in redone
        }
        return plan
    # Integration: every task's steps, and the integration steps before the point.
    integration: list[Step] = []
    if point not in FORK_STAGES:
        origin = by_key[point]
        integration = [
            s for s in succeeded if step_stage(s.key) == "integrate" and s.pk < origin.pk
        ]
    plan.steps = design_steps + orchestrate + task_steps + integration
    plan.tasks_done = {t.key for t in tasks if t.status == PlanTask.Status.SUCCEEDED}
    if len(plan.tasks_done) == len(tasks):
        plan.start = INTEGRATE
    return plan


def _copy_plan(*, source: Run, fork: Run, tasks_done: set[str]) -> dict[int, PlanTask]:
    """The source's plan tasks in the fork (source task id -> copy); the ones taken over whole
    keep their status and result, the others start pending."""
    copies: dict[int, PlanTask] = {}
    for task in PlanTask.objects.filter(run=source).order_by("layer", "id"):
        done = task.key in tasks_done
        copies[task.pk] = PlanTask.objects.create(
            run=fork,
            key=task.key,
            title=task.title,
            spec=task.spec,
            files=task.files,
            depends_on=task.depends_on,
            layer=task.layer,
            status=PlanTask.Status.SUCCEEDED if done else PlanTask.Status.PENDING,
            result=task.result if done else None,
        )
    return copies


def _copy_steps(*, fork: Run, steps: list[Step], tasks: dict[int, PlanTask]) -> list[Step]:
    """Reused rows of ``steps`` in the fork: what they produced, who produced it and what it
    cost there (for the record: the fork's totals leave it out), no model call of their own."""
    now = timezone.now()
    return Step.objects.bulk_create(
        [
            Step(
                run=fork,
                role=step.role,
                key=step.key,
                plan_task=tasks.get(step.plan_task_id) if step.plan_task_id else None,
                round=step.round,
                attempt=step.attempt,
                status=Step.Status.SUCCEEDED,
                provider=step.provider,
                model=step.model,
                tokens_in=step.tokens_in,
                tokens_out=step.tokens_out,
                cost_usd=step.cost_usd,
                latency_ms=step.latency_ms,
                llm_calls=0,
                input=step.input,
                output=step.output,
                started_at=now,
                finished_at=now,
                reused=True,
                reused_from=step,
            )
            for step in steps
        ]
    )


def _stages_taken_over(source: Run, start: Next) -> dict[str, Any]:
    """The source's stage times for the stages the fork does not run again."""
    done = {"orchestrate": ("design",), "integrate": ("design", "coding")}.get(start.kind, ())
    return {
        stage: {**times, "reused_from": source.pk}
        for stage, times in (source.stages or {}).items()
        if stage in done and "completed_at" in times
    }


def run_fork(*, run: Run, user: Any, point: str, options: dict[str, Any] | None = None) -> Run:
    """Start a fork of ``run`` from ``point`` (a stage or one of its step keys): the new run.

    ``options`` override the source's (validated like a new run's, ``invalid_options``);
    an unknown point, or one past a design that was never approved, is ``invalid_fork_point``.
    """
    if run.kind == Run.Kind.IMPORT:
        raise ApplicationError(
            "An import run cannot be forked; import again, or start a run on top of it.",
            code="import_not_forkable",
        )
    point = (point or "").strip()
    merged = {**(run.options or {}), **(options or {})}
    validated = run_options_validate(merged)
    with transaction.atomic():
        plan = fork_plan(source=run, point=point)
        fields: dict[str, Any] = {}
        if plan.copy_plan:
            fields.update(design=run.design, approved_at=run.approved_at)
        if plan.start.kind == "integrate":
            fields["integration_claimed_at"] = timezone.now()
        fork = run_create(
            project=run.project,
            user=user,
            prompt=run.prompt,
            options=validated,
            start=plan.start,
            started={"forked_from": run.pk, "fork_point": point},
            base_run_id=run.base_run_id,
            forked_from=run,
            fork_point=point,
            stages=_stages_taken_over(run, plan.start),
            **fields,
        )
        tasks = (
            _copy_plan(source=run, fork=fork, tasks_done=plan.tasks_done) if plan.copy_plan else {}
        )
        copies = _copy_steps(fork=fork, steps=plan.steps, tasks=tasks)
        publish(
            run_id=fork.pk,
            type="run.forked",
            payload={
                "forked_from": run.pk,
                "from": point,
                "start": plan.start.kind,
                "reused": [
                    {"key": copy.key, "step_id": copy.pk, "reused_from": copy.reused_from_id}
                    for copy in copies
                ],
                "tasks_reused": sorted(plan.tasks_done),
            },
        )
    logger.info(
        "run.forked",
        run_id=fork.pk,
        forked_from=run.pk,
        point=point,
        reused_steps=len(copies),
        start=plan.start.kind,
    )
    return fork
