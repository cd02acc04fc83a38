"""Reads of runs and steps, always filtered by the project's owner."""

from datetime import timedelta
from decimal import Decimal
from typing import Any

from django.db.models import Q, QuerySet, Sum
from django.utils import timezone

from common.errors import NotFound

from .models import PlanTask, Run, Step


def run_list_for_project(*, project: Any) -> QuerySet[Run]:
    """The project's runs, newest first (the caller already checked the owner)."""
    return Run.objects.filter(project=project).order_by("-created_at", "-id")


def user_spent_last_day_usd(*, user_id: int) -> Decimal:
    """What the runs the user started spent over the last 24 hours, in USD.

    A run counts with its whole cost when it spent within the window: it finished in it, or
    it has not finished and its heartbeat (touched by every model call) is in it. That may
    count some dollars from before the window, never fewer than were spent in it.
    """
    since = timezone.now() - timedelta(hours=24)
    total = (
        Run.objects.filter(created_by_id=user_id)
        .filter(Q(finished_at__gte=since) | Q(finished_at__isnull=True, heartbeat_at__gte=since))
        .aggregate(total=Sum("cost_usd"))["total"]
    )
    return total or Decimal(0)


def run_get_for_user(*, user: Any, run_id: int) -> Run:
    """The user's run, or ``NotFound`` (another user's run does not exist for them)."""
    try:
        return Run.objects.select_related("project").get(id=run_id, project__owner=user)
    except Run.DoesNotExist as exc:
        raise NotFound("Run not found.") from exc


def step_list_for_run(*, run: Run) -> QuerySet[Step]:
    """The run's steps in the order they were created."""
    return Step.objects.filter(run=run).select_related("plan_task").order_by("id")


def step_get_for_user(*, user: Any, step_id: int) -> Step:
    """The user's step, or ``NotFound``."""
    try:
        return Step.objects.select_related("run").get(id=step_id, run__project__owner=user)
    except Step.DoesNotExist as exc:
        raise NotFound("Step not found.") from exc


def run_rounds(*, run: Run) -> list[dict[str, Any]]:
    """Each design round: the architect's proposal, the planner's objections, the resolution.

    ``resolutions`` of round r answer the objections of round r - 1.
    """
    steps = Step.objects.filter(run=run, key__startswith="design:").values(
        "key", "round", "role", "status", "output"
    )
    rounds: dict[int, dict[str, Any]] = {}
    for step in steps:
        entry = rounds.setdefault(
            step["round"],
            {
                "round": step["round"],
                "proposal": "",
                "resolutions": [],
                "objections": [],
                "approved": None,
                "status": "pending",
            },
        )
        output = step["output"] or {}
        if step["role"] == "architect":
            entry["proposal"] = output.get("summary", "")
            entry["resolutions"] = output.get("resolutions", [])
        elif step["role"] == "planner":
            entry["objections"] = output.get("objections", [])
            entry["approved"] = output.get("approved") if step["output"] is not None else None
        entry["status"] = step["status"]
    return [rounds[number] for number in sorted(rounds)]


def run_tasks(*, run: Run) -> list[dict[str, Any]]:
    """The plan's tasks with their DAG layer and status."""
    return [
        {
            "key": task.key,
            "title": task.title,
            "depends_on": task.depends_on,
            "layer": task.layer,
            "status": task.status,
            "files": task.files,
        }
        for task in PlanTask.objects.filter(run=run).order_by("layer", "id")
    ]
