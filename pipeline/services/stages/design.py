"""Design rounds: the architect proposes, the planner objects or approves with a DAG.

In a follow-up run both see ``base_tree``: the summary of the tree they change (its paths,
public interfaces, test names and last test report, within the context budget). On an
imported repository they see its ``repo_map`` (``pipeline.repomap``) and where it came from
with its baseline (``repository``).
"""

from __future__ import annotations

from typing import Any

from ... import context as ctx
from ...flow import ORCHESTRATE, Next
from ...models import PlanTask, Run, Step
from ...roles import ARCHITECT, PLANNER
from ..run_state import run_check_bounds, run_fail, stage_mark
from ..steps import StageEdge, StepLedger, StepSpec, model_call, step_run
from .common import (
    base_context,
    base_tree,
    repository_context,
    run_chain,
    run_option,
    step_output,
)


def _with_base_tree(run: Run, context: dict[str, Any]) -> dict[str, Any]:
    """A follow-up's design context carries the summary of the tree it changes; a run on an
    imported repository (or a follow-up of one) its repository map and baseline instead."""
    repository = repository_context(run)
    if repository is not None:
        context.update(repository)
        return context
    summary = base_tree(run)
    if summary is not None:
        context["base_tree"] = summary
    return context


def design_architect(*, run_id: int, round: int) -> None:  # noqa: A002
    """Round ``round`` of the design: the architect proposes (answering last objections)."""
    run = run_check_bounds(run_id=run_id)

    def prepare(run: Run, step: Step) -> dict[str, Any]:
        context = base_context(run, step, "design")
        context["round"] = round
        previous = step_output(run_id, f"design:{round - 1}:planner") if round > 1 else None
        context["objections"] = (previous or {}).get("objections", [])
        earlier = step_output(run_id, f"design:{round - 1}:architect") if round > 1 else None
        if earlier:
            context["previous_design"] = ctx.design_brief(earlier)
        return {"context": _with_base_tree(run, context), "chain": run_chain(run)}

    def execute(prepared: dict[str, Any], ledger: StepLedger) -> dict[str, Any]:
        answer = model_call(
            prompt=ARCHITECT,
            context=prepared["context"],
            ledger=ledger,
            chain=prepared["chain"],
            last=True,
        )
        return answer.model_dump(mode="json")

    step_run(
        run_id=run_id,
        spec=StepSpec(
            role="architect",
            key=f"design:{round}:architect",
            round=round,
            edge=StageEdge(
                stage="design",
                edge="started",
                status=Run.Status.DESIGNING,
                from_statuses=(Run.Status.QUEUED,),
                started=True,
            ),
        ),
        prepare=prepare,
        execute=execute,
        run=run,
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
    # One statement for every task; a task stored before (a replay) is left as it is.
    PlanTask.objects.bulk_create(
        [
            PlanTask(
                run_id=run_id,
                key=task["key"],
                title=task["title"][:300],
                spec=task.get("spec", ""),
                files=task.get("files") or [],
                depends_on=list(dict.fromkeys(task.get("depends_on") or [])),
                layer=layers[task["key"]],
            )
            for task in tasks
        ],
        ignore_conflicts=True,
    )
    # The approved design with the design stage's end, in one statement.
    stage_mark(
        run_id=run_id,
        stage="design",
        edge="completed",
        design={"approved_round": round, **design, "plan": tasks},
    )


def design_planner(*, run_id: int, round: int) -> Next | None:  # noqa: A002
    """Round ``round``: the planner objects (-> next round, bounded) or approves with a DAG."""
    run = run_check_bounds(run_id=run_id)
    max_rounds = int(run_option(run, "max_design_rounds"))

    # The architect's design of this round, read once for the prompt, the round's event and
    # the plan's row (a replay that skips ``prepare`` reads it when it needs it).
    designs: dict[str, Any] = {}

    def design_of_round() -> dict[str, Any]:
        if "design" not in designs:
            designs["design"] = step_output(run_id, f"design:{round}:architect") or {}
        return designs["design"]

    stored_now: list[bool] = []

    def prepare(run: Run, step: Step) -> dict[str, Any]:
        context = base_context(run, step, "plan_review")
        context["round"] = round
        context["design"] = design_of_round()
        return {"context": _with_base_tree(run, context), "chain": run_chain(run)}

    def execute(prepared: dict[str, Any], ledger: StepLedger) -> dict[str, Any]:
        answer = model_call(
            prompt=PLANNER,
            context=prepared["context"],
            ledger=ledger,
            chain=prepared["chain"],
            last=True,
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

    def round_events(review: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
        design = design_of_round()
        payload = {
            "round": round,
            "approved": review["approved"],
            "objections": review["objections"],
            "resolutions": design.get("resolutions", []),
            "summary": design.get("summary", ""),
        }
        return [("consensus.round", payload)]

    def on_success(step: Step, review: dict[str, Any]) -> None:
        if review["approved"]:
            _plan_store(run_id, round, design_of_round(), review["tasks"])
            stored_now.append(True)

    review = step_run(
        run_id=run_id,
        spec=StepSpec(role="planner", key=f"design:{round}:planner", round=round),
        prepare=prepare,
        execute=execute,
        events=round_events,
        on_success=on_success,
        run=run,
    )
    if review.get("approved"):
        # A replay after a crash: the review was stored before, its plan perhaps not.
        if not stored_now:
            if PlanTask.objects.filter(run_id=run_id).exists():
                stage_mark(run_id=run_id, stage="design", edge="completed")
            else:
                _plan_store(run_id, round, design_of_round(), review["tasks"])
        return ORCHESTRATE
    if round >= max_rounds:
        run_fail(
            run_id=run_id,
            code="max_design_rounds",
            detail=f"The planner did not approve the design in {max_rounds} round(s); last "
            f"objections: {'; '.join(review.get('objections') or [])[:1000]}",
        )
        return None
    return Next.design(round + 1)
