"""Dashboard pieces of steering: the run page's Tasks card (edit the plan at the gate, send a
message to a task) and the generate form's live forecast.

They write through the services the API calls (``plan_edit``, ``task_message_send``) and
read through the same selectors, so a rule lives in one place. Each form posts with htmx and
gets the Tasks card back (errors in it, next to the form); without htmx the browser is sent
back to the run page with a message.
"""

from __future__ import annotations

import json
from typing import Any

from django.contrib import messages
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_http_methods, require_POST

from accounts.page_access import signed_in_required
from common.errors import ApplicationError
from projects.selectors import project_get_for_user

from .forecast import run_estimate
from .models import PlanTask, Run
from .pages import base_run_from_form, options_from_form
from .selectors import run_get_for_user, task_messages_for_run
from .services.plan_edits import plan_as_api, plan_edit
from .services.steering import task_message_send


def _lines(raw: str | None) -> list[str]:
    """A form's list (one per line, or separated by commas), blanks dropped."""
    text = (raw or "").replace(",", "\n")
    return [part.strip() for part in text.splitlines() if part.strip()]


def plan_context(run: Run, **extra: Any) -> dict[str, Any]:
    """What the Tasks card shows: the tasks with their messages, and what may be done."""
    by_task: dict[str, list[dict[str, Any]]] = {}
    for message in task_messages_for_run(run=run):
        by_task.setdefault(message["task"], []).append(message)
    tasks = [
        {**plan_as_api(task), "layer": task.layer, "status": task.status,
         "messages": by_task.get(task.key, [])}
        for task in PlanTask.objects.filter(run=run).order_by("layer", "id")
    ]  # fmt: skip
    return {
        "run": run,
        "tasks": tasks,
        "keys": [task["key"] for task in tasks],
        "editable": run.status == Run.Status.AWAITING_APPROVAL,
        "can_message": run.status in Run.UNFINISHED,
        "errors": {},
        "added": {},
        **extra,
    }


def _answer(request: HttpRequest, run: Run, *, done: str, error: ApplicationError | None,
            where: str, values: dict[str, Any] | None = None) -> HttpResponse:  # fmt: skip
    """The Tasks card (htmx), or back to the run page with a message."""
    run.refresh_from_db()
    if request.headers.get("HX-Request"):
        errors = {where: error.detail} if error is not None else {}
        context = plan_context(run, errors=errors, added=values or {}, done="" if error else done)
        return render(request, "pipeline/_run_plan.html", context)
    if error is not None:
        messages.error(request, error.detail)
    else:
        messages.success(request, done)
    return HttpResponseRedirect(reverse("page-run", args=[run.pk]))


def _current_plan(run: Run) -> list[dict[str, Any]]:
    return [plan_as_api(task) for task in PlanTask.objects.filter(run=run).order_by("layer", "id")]


def _task_from_form(data: Any, key: str) -> dict[str, Any]:
    return {
        "key": key,
        "title": (data.get("title") or "").strip(),
        "description": (data.get("description") or "").strip(),
        "files": _lines(data.get("files")),
        "depends_on": data.getlist("depends_on"),
    }


@signed_in_required
@require_http_methods(["GET"])
def run_plan_fragment(request: HttpRequest, run_id: int) -> HttpResponse:
    """The Tasks card: each task, its messages, and at the gate the forms that edit it."""
    run = run_get_for_user(user=request.user, run_id=run_id)
    return render(request, "pipeline/_run_plan.html", plan_context(run))


@signed_in_required
@require_POST
def run_plan_task_save(request: HttpRequest, run_id: int, key: str) -> HttpResponse:
    """Save one task's title, description, files and dependencies (the whole plan goes to
    ``plan_edit`` with this task changed)."""
    run = run_get_for_user(user=request.user, run_id=run_id)
    plan = [
        _task_from_form(request.POST, key) if task["key"] == key else task
        for task in _current_plan(run)
    ]
    return _edit(request, run, plan, where=f"task:{key}", done=f"Task {key} saved.")


@signed_in_required
@require_POST
def run_plan_task_remove(request: HttpRequest, run_id: int, key: str) -> HttpResponse:
    """Remove one task from the plan (the others may not depend on it)."""
    run = run_get_for_user(user=request.user, run_id=run_id)
    plan = [task for task in _current_plan(run) if task["key"] != key]
    return _edit(request, run, plan, where=f"task:{key}", done=f"Task {key} removed.")


@signed_in_required
@require_POST
def run_plan_task_add(request: HttpRequest, run_id: int) -> HttpResponse:
    """Add a task to the plan."""
    run = run_get_for_user(user=request.user, run_id=run_id)
    added = _task_from_form(request.POST, (request.POST.get("key") or "").strip())
    plan = [*_current_plan(run), added]
    return _edit(request, run, plan, where="add", done=f"Task {added['key']} added.", values=added)


def _edit(request: HttpRequest, run: Run, plan: list[dict[str, Any]], *, where: str, done: str,
          values: dict[str, Any] | None = None) -> HttpResponse:  # fmt: skip
    try:
        plan_edit(run=run, user=request.user, tasks=plan)
    except ApplicationError as exc:
        return _answer(request, run, done=done, error=exc, where=where, values=values)
    return _answer(request, run, done=done, error=None, where=where)


@signed_in_required
@require_POST
def run_task_message(request: HttpRequest, run_id: int, key: str) -> HttpResponse:
    """Send a message to a task's next coder attempt."""
    run = run_get_for_user(user=request.user, run_id=run_id)
    try:
        task_message_send(run=run, user=request.user, key=key, text=request.POST.get("text", ""))
    except ApplicationError as exc:
        return _answer(request, run, done="", error=exc, where=f"message:{key}")
    done = f"Sent: task {key}'s next coder attempt reads it."
    response = _answer(request, run, done=done, error=None, where=f"message:{key}")
    # The card keeps a message box as it was through refreshes; the browser empties it now.
    response["HX-Trigger-After-Swap"] = json.dumps({"task-message-sent": {"key": key}})
    return response


@signed_in_required
@require_POST
def project_estimate_fragment(request: HttpRequest, project_id: int) -> HttpResponse:
    """The generate form's forecast, asked again as the prompt and options change."""
    project = project_get_for_user(user=request.user, project_id=project_id)
    options, errors = options_from_form(request.POST)
    context: dict[str, Any] = {"forecast": None, "error": ""}
    if errors:
        context["error"] = " ".join(message for items in errors.values() for message in items)
    else:
        try:
            found = run_estimate(
                project=project,
                user=request.user,
                prompt=request.POST.get("prompt", ""),
                options=options,
                base_run_id=base_run_from_form(request.POST.get("base_run")),
            )
        except ApplicationError as exc:
            context["error"] = exc.detail
        else:
            context["forecast"] = found.as_dict()
    return render(request, "pipeline/_estimate.html", context)
