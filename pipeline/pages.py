"""Dashboard pages of a project's runs: the runs and the generate form; the providers table.

Reads go through ``pipeline.selectors`` (owner-checked), writes through the run services the
API calls (``run_generate``). The run page is in ``pipeline.run_pages``; the Follow up, Fork
and Compare pages are in ``pipeline.iteration_pages``.
"""

from decimal import Decimal, InvalidOperation
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_http_methods, require_POST

from accounts.page_access import signed_in_required, staff_required
from accounts.templatetags.page_tags import seconds_text
from accounts.throttling import scope_hit
from common.errors import ApplicationError, NotFound
from projects.selectors import project_get_for_user
from providers.selectors import configured_models, providers_status
from repositories.pages import forge_form_context

from .models import Run
from .selectors import project_baseline, run_list_for_project
from .services.followups import LATEST, BaseRunChoice, run_generate

# --- shared reads -------------------------------------------------------------------------


def run_seconds(run: Run) -> float | None:
    """How long the run took, or has taken so far (None before it started)."""
    start = run.started_at or run.created_at
    if start is None:
        return None
    end = run.finished_at or (None if run.is_finished else timezone.now())
    return None if end is None else max(0.0, (end - start).total_seconds())


def chain_choices() -> list[str]:
    """Every ``provider:model`` the operator configured (the only ones a run may name)."""
    return sorted(
        f"{provider}:{model}"
        for provider, models in configured_models().items()
        for model in models
        if model
    )


# --- the project page: runs and the generate form ------------------------------------------


def _generate_defaults() -> dict[str, Any]:
    return {
        "prompt": "",
        "base_run": "latest",
        "providers": "",
        "require_approval": settings.PIPELINE_REQUIRE_APPROVAL,
        "budget_usd": settings.PIPELINE_DEFAULT_BUDGET_USD,
        "max_design_rounds": settings.PIPELINE_MAX_DESIGN_ROUNDS,
        "max_fix_attempts": settings.PIPELINE_MAX_FIX_ATTEMPTS,
    }


def _baseline_view(project: Any) -> dict[str, Any] | None:
    """The project page's "before" picture: the import's own tests, failing ones first."""
    try:
        baseline = project_baseline(project=project)
    except NotFound:
        return None
    order = {"failed": 0, "error": 0, "xpassed": 1, "passed": 2}
    baseline["tests"].sort(key=lambda test: (order.get(test["outcome"], 1), test["id"]))
    return baseline


def _project_page(request: HttpRequest, project: Any, *, status: int = 200, **extra: Any) -> Any:
    listed = list(run_list_for_project(project=project)[:100])
    runs = []
    for run in listed:
        seconds = run_seconds(run)
        runs.append({"run": run, "duration": seconds_text(seconds) if seconds is not None else ""})
    completed = [run for run in listed if run.status == Run.Status.COMPLETED]
    context = {
        "nav": "projects",
        "tab": "runs",
        "project": project,
        "runs": runs,
        # What a new run may build on: the latest completed run (the default) or another.
        "completed_runs": completed,
        "chains": chain_choices(),
        "default_chain": ", ".join(settings.LLM_CHAINS.get("default", [])),
        "values": _generate_defaults(),
        "errors": {},
        **forge_form_context(project),
        "limits": {
            "rounds": settings.PIPELINE_OPTION_MAX_ROUNDS,
            "fix": settings.PIPELINE_OPTION_MAX_FIX_ATTEMPTS,
            "prompt": settings.PIPELINE_PROMPT_MAX_CHARS,
            "upload_mb": settings.REPOSITORY_IMPORT_MAX_UPLOAD_BYTES / (1024 * 1024),
        },
        "baseline": _baseline_view(project),
        "import_values": {"source": "git", "git_url": "", "git_ref": ""},
        "import_errors": {},
        **extra,
    }
    return render(request, "pipeline/project.html", context, status=status)


@signed_in_required
@require_http_methods(["GET"])
def project_page(request: HttpRequest, project_id: int) -> HttpResponse:
    """A project: its runs (status, duration, tokens, cost) and the form that starts one."""
    project = project_get_for_user(user=request.user, project_id=project_id)
    return _project_page(request, project)


def options_from_form(data: Any) -> tuple[dict[str, Any], dict[str, list[str]]]:
    """The ``options`` of ``POST /projects/{id}/generate`` from the form, or field errors."""
    options: dict[str, Any] = {"require_approval": data.get("require_approval") == "on"}
    errors: dict[str, list[str]] = {}
    if data.get("providers"):
        options["providers"] = [data["providers"]]
    budget = (data.get("budget_usd") or "").strip()
    if budget:
        try:
            options["budget_usd"] = str(Decimal(budget))
        except InvalidOperation:
            errors["budget_usd"] = ["Enter an amount in US dollars, like 0.50."]
    for name in ("max_design_rounds", "max_fix_attempts"):
        raw = (data.get(name) or "").strip()
        if raw:
            if not raw.isdigit():
                errors[name] = ["Enter a whole number."]
            else:
                options[name] = int(raw)
    return options, errors


def base_run_from_form(raw: str | None) -> BaseRunChoice:
    """The ``base_run`` of ``run_generate`` from a form's "Build on" choice: "latest" (or
    nothing), "fresh" (None) or a run id; ``ApplicationError`` for anything else."""
    value = (raw or "").strip()
    if value in ("", "latest"):
        return LATEST
    if value == "fresh":
        return None
    if not value.isdigit():
        raise ApplicationError("Choose a run to build on, or a fresh start.", code="invalid")
    return int(value)


def _error_field(exc: ApplicationError) -> str:
    """The generate form's field an error of ``run_generate`` is about."""
    if exc.code == "invalid_prompt":
        return "prompt"
    if exc.code.startswith("base_run") or isinstance(exc, NotFound) or exc.code == "invalid":
        return "base_run"
    return _option_field(exc.detail)


def _option_field(detail: str) -> str:
    for name in ("budget_usd", "max_design_rounds", "max_fix_attempts", "providers"):
        if name in detail:
            return name
    return "__all__"


@signed_in_required
@require_POST
def project_generate_page(request: HttpRequest, project_id: int) -> HttpResponse:
    """Start a run (``run_generate``, like ``POST /projects/{id}/generate``: on top of the
    latest completed run unless the form says otherwise); open its page."""
    project = project_get_for_user(user=request.user, project_id=project_id)
    values = {**_generate_defaults(), **request.POST.dict()}
    values["require_approval"] = request.POST.get("require_approval") == "on"
    wait = scope_hit(request, "generate")
    if wait is not None:
        errors = {"__all__": [f"Too many runs started; try again in {wait} s."]}
        return _project_page(request, project, status=429, values=values, errors=errors)
    options, errors = options_from_form(request.POST)
    if errors:
        return _project_page(request, project, status=400, values=values, errors=errors)
    try:
        run = run_generate(
            project=project,
            user=request.user,
            prompt=request.POST.get("prompt", ""),
            options=options,
            base_run_id=base_run_from_form(request.POST.get("base_run")),
        )
    except ApplicationError as exc:
        errors = {_error_field(exc): [exc.detail]}
        return _project_page(request, project, status=400, values=values, errors=errors)
    return HttpResponseRedirect(reverse("page-run", args=[run.pk]))


# --- providers (staff) ----------------------------------------------------------------------
# Here rather than in ``providers``, which imports nothing of the other apps.


@staff_required
@require_http_methods(["GET"])
def providers_page(request: HttpRequest) -> HttpResponse:
    """``GET /admin/providers`` as a table: circuits, calls, errors, latency percentiles."""
    return render(
        request, "providers/status.html", {"nav": "providers", "status": providers_status()}
    )
