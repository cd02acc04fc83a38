"""Editing the agreed plan at the approval gate (``PATCH /runs/{id}/plan``).

While a run waits in ``awaiting_approval`` its plan is only rows (``PlanTask``, stored when
the planner approved) that nothing has started on: the orchestrator and every coder come
after the gate. ``plan_edit`` replaces those rows with the owner's whole new task list in one
transaction, under the run's row lock, so an approval or a cancel either comes before it
(and the edit is refused: the run no longer waits) or after it (and goes on with the edited
plan). After approval the canvas reads the rows as always: the layers are recomputed here, a
removed task has no row and so no coder, an added one is claimed like any other.

The new list is checked first, each refusal in plain words (``invalid_plan``): at least one
task and at most ``PIPELINE_MAX_PLAN_TASKS``, keys unique, every dependency a task of the
list, no task depending on itself, no cycle, safe relative file paths. Each edit that
changes anything is kept as a decision ``{by, at, changes}`` in the run's ``design["edits"]``
beside the plan it produced (``design["plan"]``), and published as ``plan.edited``. A design
interface whose file no task writes any more is dropped from the design with the task that
wrote it, so integration does not build it back. A fork from ``orchestrate`` (or later)
copies the design and the plan rows, so it goes on with the edit.
"""

from __future__ import annotations

import re
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from common.errors import ApplicationError, Conflict
from common.logging import get_logger
from projects.artifacts import artifact_path_normalize

from ..events import publish
from ..models import PlanTask, Run, Step
from .stages.design import plan_layers

logger = get_logger(__name__)

# The planner's task keys (pipeline.roles.planner.TaskSpec).
KEY_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,63}$"
TITLE_MAX_CHARS = 300
DESCRIPTION_MAX_CHARS = 10_000
FILES_MAX = 100
# The fields of a task the API names, and the PlanTask field each is kept in.
FIELDS = {"title": "title", "description": "spec", "files": "files", "depends_on": "depends_on"}


class InvalidPlan(ApplicationError):
    """The edited plan breaks a rule; ``detail`` says which, in plain words."""

    code = "invalid_plan"


class PlanTaskIn(BaseModel):
    """One task of an edited plan, as ``PATCH /runs/{id}/plan`` takes it."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    key: str
    title: str = Field(min_length=1, max_length=TITLE_MAX_CHARS)
    description: str = Field(default="", max_length=DESCRIPTION_MAX_CHARS)
    files: list[str] = Field(min_length=1, max_length=FILES_MAX)
    depends_on: list[str] = Field(default_factory=list)

    @field_validator("key")
    @classmethod
    def _key(cls, value: str) -> str:
        if not re.fullmatch(KEY_PATTERN, value):
            raise ValueError(
                "a key is 1 to 64 lowercase letters, digits, '-' or '_', starting with a "
                "letter or a digit"
            )
        return value


def _parse(tasks: Any) -> list[PlanTaskIn]:
    if not isinstance(tasks, list):
        raise InvalidPlan("Send the whole plan as 'tasks': a list of tasks.")
    parsed = []
    for index, item in enumerate(tasks, start=1):
        try:
            parsed.append(PlanTaskIn.model_validate(item))
        except ValidationError as exc:
            name = item.get("key") if isinstance(item, dict) else None
            where = f"task {name!r}" if isinstance(name, str) and name else f"task {index}"
            detail = "; ".join(
                f"{'.'.join(str(p) for p in err['loc']) or 'task'}: "
                f"{str(err['msg']).removeprefix('Value error, ')}"
                for err in exc.errors()
            )
            raise InvalidPlan(f"In {where}: {detail}.") from exc
    return parsed


def plan_validate(tasks: Any) -> list[dict[str, Any]]:
    """The edited plan as rows would hold it (``spec`` for the description, paths
    normalised, dependencies once each, the layer of each task), or ``InvalidPlan``."""
    parsed = _parse(tasks)
    if not parsed:
        raise InvalidPlan("A plan needs at least one task.")
    limit = settings.PIPELINE_MAX_PLAN_TASKS
    if len(parsed) > limit:
        raise InvalidPlan(f"A plan may have at most {limit} tasks; this one has {len(parsed)}.")
    keys = [task.key for task in parsed]
    for key in dict.fromkeys(keys):
        if keys.count(key) > 1:
            raise InvalidPlan(f"Task key {key!r} is used {keys.count(key)} times: keys are unique.")
    known = set(keys)
    plan: list[dict[str, Any]] = []
    for task in parsed:
        depends = list(dict.fromkeys(task.depends_on))
        if task.key in depends:
            raise InvalidPlan(f"Task {task.key!r} depends on itself.")
        unknown = [key for key in depends if key not in known]
        if unknown:
            names = ", ".join(repr(key) for key in unknown)
            raise InvalidPlan(
                f"Task {task.key!r} depends on {names}, which the plan does not have."
            )
        try:
            files = list(dict.fromkeys(artifact_path_normalize(path) for path in task.files))
        except ApplicationError as exc:
            raise InvalidPlan(f"Task {task.key!r}: {exc.detail}") from exc
        plan.append(
            {
                "key": task.key,
                "title": task.title,
                "spec": task.description,
                "files": files,
                "depends_on": depends,
            }
        )
    try:
        layers = plan_layers(plan)
    except ValueError as exc:
        raise InvalidPlan(
            f"The tasks {', '.join(_in_cycles(plan))} depend on each other in a cycle: no "
            "order can build them."
        ) from exc
    for item in plan:
        item["layer"] = layers[item["key"]]
    return plan


def _in_cycles(plan: list[dict[str, Any]]) -> list[str]:
    """The tasks on a dependency cycle (or between two): peel off every task that needs no
    remaining task or that no remaining task needs, until nothing changes."""
    deps = {task["key"]: set(task["depends_on"]) for task in plan}
    remaining = set(deps)
    changed = True
    while changed:
        changed = False
        for key in sorted(remaining):
            needs = deps[key] & remaining
            needed = any(key in deps[other] for other in remaining if other != key)
            if not needs or not needed:
                remaining.discard(key)
                changed = True
    return sorted(remaining)


def plan_as_api(task: PlanTask | dict[str, Any]) -> dict[str, Any]:
    """A plan task as the API shows it (``description``, not ``spec``)."""
    get = task.get if isinstance(task, dict) else lambda name: getattr(task, name)
    return {
        "key": get("key"),
        "title": get("title"),
        "description": get("spec"),
        "files": list(get("files") or []),
        "depends_on": list(get("depends_on") or []),
    }


def _changes(before: dict[str, PlanTask], after: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """What the edit did, task by task: added, removed, changed (each field from -> to)."""
    changes: list[dict[str, Any]] = []
    after_keys = {task["key"] for task in after}
    for task in after:
        old = before.get(task["key"])
        if old is None:
            changes.append({"op": "added", "task": task["key"], "title": task["title"]})
            continue
        fields = {}
        for name, field in FIELDS.items():
            was, now = getattr(old, field), task[field]
            if was != now:
                fields[name] = {"from": was, "to": now}
        if fields:
            changes.append({"op": "changed", "task": task["key"], "fields": fields})
    for key, old in before.items():
        if key not in after_keys:
            changes.append({"op": "removed", "task": key, "title": old.title})
    return changes


def _design_after(
    design: dict[str, Any], before: dict[str, PlanTask], after: list[dict[str, Any]]
) -> tuple[dict[str, Any], list[str]]:
    """The design with the edited plan, less the interfaces whose file the edit left unowned."""
    written_before = {path for task in before.values() for path in task.files}
    written_after = {path for task in after for path in task["files"]}
    orphaned = written_before - written_after
    kept, dropped = [], []
    for interface in design.get("interfaces") or []:
        if interface.get("path") in orphaned:
            dropped.append(f"{interface.get('path')}:{interface.get('name')}")
        else:
            kept.append(interface)
    plan = [{key: task[key] for key in ("key", "title", "spec", "files", "depends_on")}
            for task in after]  # fmt: skip
    return {**design, "interfaces": kept, "plan": plan}, dropped


def plan_edit(*, run: Run, user: Any, tasks: Any) -> dict[str, Any]:
    """Replace the plan of a run waiting for approval by ``tasks`` (the whole new list).

    Returns ``{"tasks": [...], "edits": [...]}``: the plan now, and every decision so far.
    ``InvalidPlan`` (400) for a plan that breaks a rule; ``Conflict`` (409) unless the run
    waits at the approval gate, or for a task that already ran.
    """
    plan = plan_validate(tasks)
    with transaction.atomic():
        locked = Run.objects.select_for_update().filter(id=run.id).first()
        if locked is None or locked.status != Run.Status.AWAITING_APPROVAL:
            raise Conflict(
                "The plan can be edited only while the run waits for approval.",
                code="not_awaiting_approval",
            )
        before = {task.key: task for task in PlanTask.objects.filter(run_id=run.id)}
        changes = _changes(before, plan)
        touched = {change["task"] for change in changes if change["op"] != "added"}
        started = sorted(
            key
            for key in touched
            if before[key].status != PlanTask.Status.PENDING
            or Step.objects.filter(plan_task=before[key]).exists()
        )
        if started:
            raise Conflict(
                f"Task {', '.join(started)} already ran: it can be neither changed nor removed.",
                code="task_started",
            )
        design = dict(locked.design or {})
        edits = list(design.get("edits") or [])
        if changes:
            _rows_replace(run_id=run.id, before=before, plan=plan)
            design, dropped = _design_after(design, before, plan)
            if dropped:
                changes.append({"op": "interfaces_dropped", "interfaces": dropped})
            decision = {
                "by": {"id": user.pk, "email": user.email},
                "at": timezone.now().isoformat().replace("+00:00", "Z"),
                "changes": changes,
            }
            edits.append(decision)
            design["edits"] = edits
            Run.objects.filter(id=run.id).update(design=design, heartbeat_at=timezone.now())
            publish(
                run_id=run.id,
                type="plan.edited",
                payload={**decision, "tasks": [task["key"] for task in plan]},
            )
    if changes:
        logger.info("plan.edited", run_id=run.id, changes=len(changes), tasks=len(plan))
    current = PlanTask.objects.filter(run_id=run.id).order_by("layer", "id")
    return {
        "tasks": [{**plan_as_api(task), "layer": task.layer} for task in current],
        "edits": edits,
    }


def _rows_replace(*, run_id: int, before: dict[str, PlanTask], plan: list[dict[str, Any]]) -> None:
    """The run's plan rows made to match ``plan`` (removed, updated, added)."""
    keys = {task["key"] for task in plan}
    PlanTask.objects.filter(run_id=run_id).exclude(key__in=keys).delete()
    for task in plan:
        values = {name: task[name] for name in ("title", "spec", "files", "depends_on", "layer")}
        old = before.get(task["key"])
        if old is None:
            PlanTask.objects.create(run_id=run_id, key=task["key"], **values)
        elif any(getattr(old, name) != value for name, value in values.items()):
            PlanTask.objects.filter(id=old.pk).update(**values)
