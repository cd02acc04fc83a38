"""The dashboard's run page: live state, summary, fragments, the step panel, the actions.

Reads go through ``pipeline.selectors`` (owner-checked), writes through the run services the
API calls (``run_approve``, ``run_cancel``, ``run_resume``). The run page is rendered with
the run's state as of its latest event and then follows the run over SSE
(``GET /runs/{id}/events`` from that event on): the browser batches the events and asks for
the fragments below at most once per batch.
"""

from datetime import datetime
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.db.models import Max
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_http_methods, require_POST
from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexers import TextLexer, guess_lexer_for_filename
from pygments.util import ClassNotFound

from accounts.page_access import signed_in_required
from accounts.templatetags.page_tags import seconds_text
from common.errors import ApplicationError
from common.logging import redact_secrets
from projects.artifacts import artifact_tree_diff
from projects.pages import diff_files

from .delivery.pages import delivery_context
from .events import FINAL_EVENT_TYPES, event_serialize
from .models import Event, Run, Step
from .pages import chain_choices, run_seconds
from .regressions import run_regressions
from .selectors import (
    STATIC_REVIEW,
    run_base_changes,
    run_get_for_user,
    run_import_origin,
    run_import_summary,
    run_rounds,
    run_tasks,
    step_get_for_run,
    step_list_for_run,
)
from .services import run_approve, run_cancel, run_resume
from .services.steering import run_pause
from .steering_pages import plan_context
from .tracing import trace_id_of

# Events a run page shows in its log at first; later ones arrive over SSE.
_LOG_EVENTS = 2000

# Why a run stopped, in a few plain words (the run's ``error`` says the rest).
_STOP_TITLES = {
    "budget": "The run spent its budget",
    "daily_budget": "Your daily spending limit was reached",
    "unpriced_model": "The model has no price",
    "wall_time": "The run took too long",
    "max_tokens": "The run used too many tokens",
    "max_fix_attempts": "A task kept failing its tests",
    "max_design_rounds": "The architect and planner did not agree",
    "max_consult_rounds": "Integration conflicts were not resolved",
    "task_failed": "A task did not succeed",
    "invalid_plan": "The plan was not usable",
    "no_files": "No files were produced",
    "cancelled": "Cancelled",
}


def _iso(value: datetime | None) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value else None


def run_state(run: Run) -> dict[str, Any]:
    """What the run page draws (task graph, timeline): tasks with attempts, and steps."""
    steps = list(step_list_for_run(run=run))
    per_task: dict[str, dict[str, Any]] = {}
    for step in steps:
        key = step.plan_task.key if step.plan_task_id and step.plan_task else None
        if key is None:
            continue
        entry = per_task.setdefault(
            key, {"coder": 0, "tester": 0, "mode": None, "latest_step_id": None}
        )
        if step.role in ("coder", "tester"):
            entry[step.role] = max(entry[step.role], step.attempt)
        if step.role == "tester" and step.output:
            entry["mode"] = step.output.get("mode") or entry["mode"]
        entry["latest_step_id"] = step.pk
    tasks = []
    for task in run_tasks(run=run):
        entry = per_task.get(task["key"], {})
        tasks.append(
            {
                "key": task["key"],
                "title": task["title"],
                "depends_on": task["depends_on"],
                "layer": task["layer"],
                "status": task["status"],
                "coder_attempts": entry.get("coder", 0),
                "tester_attempts": entry.get("tester", 0),
                "static_review": entry.get("mode") == STATIC_REVIEW,
                "latest_step_id": entry.get("latest_step_id"),
            }
        )
    return {
        "id": run.pk,
        "status": run.status,
        "finished": run.is_finished,
        "now": _iso(timezone.now()),
        "tasks": tasks,
        "steps": [
            {
                "id": step.pk,
                "key": step.key,
                "role": step.role,
                "task": step.plan_task.key if step.plan_task_id and step.plan_task else None,
                "round": step.round,
                "attempt": step.attempt,
                "status": step.status,
                "started_at": _iso(step.started_at),
                "finished_at": _iso(step.finished_at),
            }
            for step in steps
        ],
    }


def _regressions_view(run: Run) -> dict[str, Any] | None:
    """A run on an imported repository: the regressions it has, and those caught and fixed."""
    if run.kind == Run.Kind.IMPORT or run.base_run_id is None:
        return None
    if run_import_origin(run=Run(id=run.base_run_id)) is None:
        return None
    found = run_regressions(run=run)
    now = set(found["regressions"])
    return {
        "regressions": found["regressions"],
        "fixed": [test_id for test_id in found["regressions_caught"] if test_id not in now],
    }


def _summary_context(run: Run) -> dict[str, Any]:
    budget_used = None
    if run.budget_usd:
        budget_used = min(Decimal(100), run.cost_usd * 100 / run.budget_usd)
    seconds = run_seconds(run)
    return {
        "run": run,
        "duration": seconds_text(seconds) if seconds is not None else "",
        "budget_used_percent": budget_used,
        "stop_title": _STOP_TITLES.get(run.error_code, "The run failed") if run.error else "",
        "can_approve": run.status == Run.Status.AWAITING_APPROVAL,
        "can_cancel": run.status in Run.UNFINISHED,
        "can_resume": run.status in (Run.Status.FAILED, Run.Status.CANCELLED, Run.Status.PAUSED),
        "can_pause": run.status in Run.ACTIVE,
        "reused_steps": (
            Step.objects.filter(run=run, reused=True).count() if run.forked_from_id else 0
        ),
        "trace_id": trace_id_of(run),
        "import_source": (
            run_import_summary(record=run_import_origin(run=run))
            if run.kind == Run.Kind.IMPORT
            else None
        ),
        "regressions": _regressions_view(run),
    }


# Where a fork may go on from, as the run page's Fork form names them.
FORK_STAGE_CHOICES = (
    ("design", "Design (reuse nothing)"),
    ("orchestrate", "Orchestration (reuse the design)"),
    ("coding", "Coding (reuse the design and brief)"),
    ("integrate", "Integration (reuse finished tasks)"),
)


def _base_diff(run: Run) -> dict[str, Any] | None:
    """A follow-up's changes to its base run's tree, with each file's diff (None without)."""
    changes = run_base_changes(run=run)
    if changes is None or run.base_run is None:
        return None
    diff = artifact_tree_diff(from_run=run.base_run, to_run=run)
    return {**changes, "files": diff_files(diff, "unified")}


def iteration_context(run: Run) -> dict[str, Any]:
    """What the run page offers to go on: Follow up (a completed run), Fork from here (any
    run, from a stage, or from a step in its panel) with the models a run may name."""
    return {
        "run": run,
        "can_follow_up": run.status == Run.Status.COMPLETED,
        "prompt_limit": settings.PIPELINE_PROMPT_MAX_CHARS,
        "values": {"prompt": "", "providers": "", "from": "coding"},
        "errors": {},
        "fork_stages": FORK_STAGE_CHOICES,
        "chains": chain_choices(),
        "run_chain": ", ".join((run.options or {}).get("providers") or []) or "configured chain",
    }


def run_page_render(
    request: HttpRequest, run: Run, *, status: int = 200, **extra: Any
) -> HttpResponse:
    """The run page (``extra``: the Follow up and Fork forms' values and errors)."""
    # The page shows the state as of this event; the stream picks up after it.
    last_seq = Event.objects.filter(run=run).aggregate(last=Max("seq"))["last"] or 0
    run.refresh_from_db()
    events = [
        event_serialize(event)
        for event in Event.objects.filter(run=run, seq__lte=last_seq).order_by("-seq")[:_LOG_EVENTS]
    ][::-1]
    final = bool(events) and events[-1]["type"] in FINAL_EVENT_TYPES
    context = {
        "nav": "projects",
        "tab": "runs",
        "project": run.project,
        **_summary_context(run),
        **iteration_context(run),
        "base_diff": _base_diff(run),
        **delivery_context(run),
        "rounds": run_rounds(run=run),
        "plan_edits": (run.design or {}).get("edits") or [],
        **{f"plan_{key}": value for key, value in plan_context(run).items() if key != "run"},
        "steps": list(step_list_for_run(run=run)),
        "page_data": {
            "run": run.pk,
            "last_seq": last_seq,
            "final": final,
            "events_url": f"/runs/{run.pk}/events",
            "state_url": reverse("page-run-state", args=[run.pk]),
            "step_url": reverse("page-run", args=[run.pk]) + "/steps/",
            "state": run_state(run),
            "events": redact_secrets(events),
        },
        **extra,
    }
    return render(request, "pipeline/run.html", context, status=status)


@signed_in_required
@require_http_methods(["GET"])
def run_page(request: HttpRequest, run_id: int) -> HttpResponse:
    """A run, live: graph, timeline, design rounds, steps, events; Approve, Cancel, Resume;
    where it came from (base run, fork source) and what it changed; Follow up, Fork."""
    run = run_get_for_user(user=request.user, run_id=run_id)
    return run_page_render(request, run)


@signed_in_required
@require_http_methods(["GET"])
def run_state_json(request: HttpRequest, run_id: int) -> JsonResponse:
    """The graph and timeline data of the run page (tasks with attempts, steps)."""
    run = run_get_for_user(user=request.user, run_id=run_id)
    return JsonResponse(run_state(run))


@signed_in_required
@require_http_methods(["GET"])
def run_summary_fragment(request: HttpRequest, run_id: int) -> HttpResponse:
    """Status, tokens, cost, budget, duration, why it stopped, and the action buttons."""
    run = run_get_for_user(user=request.user, run_id=run_id)
    return render(request, "pipeline/_run_summary.html", _summary_context(run))


@signed_in_required
@require_http_methods(["GET"])
def run_iterate_fragment(request: HttpRequest, run_id: int) -> HttpResponse:
    """The Follow up and Fork forms (Follow up once the run completed)."""
    run = run_get_for_user(user=request.user, run_id=run_id)
    return render(request, "pipeline/_run_iterate.html", iteration_context(run))


@signed_in_required
@require_http_methods(["GET"])
def run_changes_fragment(request: HttpRequest, run_id: int) -> HttpResponse:
    """A follow-up's changes to its base run's files, each file's diff."""
    run = run_get_for_user(user=request.user, run_id=run_id)
    context = {"run": run, "base_diff": _base_diff(run)}
    return render(request, "pipeline/_run_changes.html", context)


@signed_in_required
@require_http_methods(["GET"])
def run_steps_fragment(request: HttpRequest, run_id: int) -> HttpResponse:
    """The table of the run's steps."""
    run = run_get_for_user(user=request.user, run_id=run_id)
    context = {"run": run, "steps": list(step_list_for_run(run=run))}
    return render(request, "pipeline/_run_steps.html", context)


@signed_in_required
@require_http_methods(["GET"])
def run_rounds_fragment(request: HttpRequest, run_id: int) -> HttpResponse:
    """The design rounds: proposal, objections, and how each was resolved."""
    run = run_get_for_user(user=request.user, run_id=run_id)
    context = {
        "run": run,
        "rounds": run_rounds(run=run),
        "plan_edits": (run.design or {}).get("edits") or [],
    }
    return render(request, "pipeline/_run_rounds.html", context)


def _code_html(path: str, text: str) -> str:
    try:
        lexer = guess_lexer_for_filename(path, text)
    except ClassNotFound:
        lexer = TextLexer()
    return highlight(text, lexer, HtmlFormatter(cssclass="highlight", wrapcode=True))


def _step_view(step: Step) -> dict[str, Any]:
    """What the step panel shows of a step's (redacted) output, by role."""
    output = redact_secrets(step.output) if step.output is not None else None
    view: dict[str, Any] = {"output": output, "error": redact_secrets(step.error or "")}
    if not isinstance(output, dict):
        return view
    files = output.get("files")
    if isinstance(files, dict):
        view["files"] = [
            {
                "path": path,
                "html": _code_html(path, str(content)),
                "lines": str(content).count("\n"),
            }
            for path, content in sorted(files.items())
        ]
    elif isinstance(files, list):
        view["files"] = [
            {
                "path": item.get("path", ""),
                "html": _code_html(item.get("path", ""), str(item.get("content", ""))),
                "lines": str(item.get("content", "")).count("\n"),
            }
            for item in files
            if isinstance(item, dict)
        ]
    if step.role == "tester":
        view["verdict"] = output
        view["static_review"] = output.get("mode") == STATIC_REVIEW
    return view


@signed_in_required
@require_http_methods(["GET"])
def step_panel(request: HttpRequest, run_id: int, step_id: int) -> HttpResponse:
    """The step panel: role, model, tokens, cost, latency, and what the step produced."""
    run = run_get_for_user(user=request.user, run_id=run_id)
    step = step_get_for_run(run=run, step_id=step_id)
    seconds = None
    if step.started_at and step.finished_at:
        seconds = (step.finished_at - step.started_at).total_seconds()
    context = {
        "run": run,
        "step": step,
        "task_key": step.plan_task.key if step.plan_task_id and step.plan_task else None,
        "duration": seconds_text(seconds) if seconds is not None else "",
        "chains": chain_choices(),
        **_step_view(step),
    }
    return render(request, "pipeline/_step_panel.html", context)


_ACTIONS = {
    "approve": (run_approve, "Approved: coding starts now."),
    "cancel": (run_cancel, "Cancelled: no further step starts."),
    "resume": (run_resume, "Resumed where it stopped."),
    "pause": (run_pause, "Paused: the steps running now finish, nothing new starts."),
}


@signed_in_required
@require_POST
def run_action(request: HttpRequest, run_id: int, action: str) -> HttpResponse:
    """Approve, Cancel or Resume (the API's services); back to the run page."""
    run = run_get_for_user(user=request.user, run_id=run_id)
    service, done = _ACTIONS[action]
    try:
        service(run=run)
    except ApplicationError as exc:
        messages.error(request, exc.detail)
    else:
        messages.success(request, done)
    return HttpResponseRedirect(reverse("page-run", args=[run.pk]))
