"""What a task's coder and tester read: the plan task with its run and a stored output, and
what the tasks it depends on wrote (over a follow-up's base tree).

The task read runs before every coder and tester step; its SQL is compiled once per process
(``common.db.PrecompiledQuery``): the ORM compiling it cost more than running it.
"""

from __future__ import annotations

from typing import Any

from django.db.models import OuterRef, QuerySet, Subquery, Value
from django.db.models.functions import Concat

from common.db import PrecompiledQuery

from ...models import PlanTask, Run, Step
from ..run_state import run_check_bounds
from .common import base_files, tree_apply


def task_files(task: PlanTask) -> dict[str, str]:
    """The files a task's accepted attempt wrote (path -> content)."""
    return dict((task.result or {}).get("files") or {})


def task_deleted(task: PlanTask) -> list[str]:
    """The files a task's accepted attempt removed from the tree."""
    return list((task.result or {}).get("deleted") or [])


def dependency_changes(task: PlanTask) -> tuple[dict[str, str], list[str]]:
    """What the tasks ``task`` depends on wrote and removed."""
    files: dict[str, str] = {}
    deleted: list[str] = []
    if not task.depends_on:  # nothing to read (and no QuerySet to build)
        return files, deleted
    for dep in PlanTask.objects.filter(run_id=task.run_id, key__in=task.depends_on):
        files.update(task_files(dep))
        deleted.extend(task_deleted(dep))
    return files, deleted


def dependency_files(task: PlanTask) -> dict[str, str]:
    """What the tasks ``task`` depends on wrote."""
    return dependency_changes(task)[0]


def task_base_tree(run: Run, task: PlanTask) -> dict[str, str]:
    """The text files as ``task`` finds them: the base tree with the changes of the tasks it
    depends on ({} for a fresh run's task without dependencies)."""
    dep_files, dep_deleted = dependency_changes(task)
    return tree_apply(base_files(run), files=dep_files, deleted=dep_deleted)


def _task_query(plan_task_id: int, output_key: Any) -> QuerySet[PlanTask]:
    """The plan task with its run and the stored output of the step ``output_key`` names (an
    expression on the task's row), as ``stored_output``."""
    stored = Step.objects.filter(
        run_id=OuterRef("run_id"), key=output_key, status=Step.Status.SUCCEEDED
    ).values("output")[:1]
    return (
        PlanTask.objects.select_related("run")
        .annotate(stored_output=Subquery(stored))
        .filter(id=plan_task_id)
        .order_by()
    )


# Compiled once per process (the ORM compiling it cost more than the statement): a coder
# reads the orchestrator's brief, a tester its coder's output (the attempt's key suffix is a
# value of the query).
_task_with_brief = PrecompiledQuery(lambda task_id: _task_query(task_id, Value("orchestrate")))
_task_with_coded = PrecompiledQuery(
    lambda task_id, suffix: _task_query(
        task_id, Concat(Value("task:"), OuterRef("key"), Value(suffix))
    )
)


def task_with_run(
    *, run_id: int, plan_task_id: int, coder_attempt: int | None = None
) -> tuple[PlanTask, Run, dict[str, Any] | None]:
    """A task's step needs, in one statement: the plan task, its run (bounds checked, as
    ``run_check_bounds``) and the stored output of the orchestrator, or of the coder's
    attempt ``coder_attempt`` (None when that step has not succeeded)."""
    if coder_attempt is None:
        task = _task_with_brief.first(plan_task_id)
    else:
        task = _task_with_coded.first(plan_task_id, f":coder:{coder_attempt}")
    if task is None:  # running since it was claimed
        raise PlanTask.DoesNotExist("PlanTask matching query does not exist.")
    run = run_check_bounds(run_id=run_id, run=task.run)
    return task, run, task.stored_output  # type: ignore[attr-defined]
