"""Dashboard pages that take a project further: Follow up, Fork from here, Compare.

Follow up starts a run on top of the run shown (``run_generate`` with it as the base run,
like ``POST /projects/{id}/generate`` with ``base_run``); Fork from here starts a run that
reuses the run's steps up to a stage or a step (``run_fork``, like ``POST /runs/{id}/fork``);
Compare shows two or three runs of a project side by side with the diff between two (the
selectors behind ``GET /projects/{id}/compare``). Both forms count against the same rate
limit as generating; their errors are shown next to the form, on the run page.
"""

from itertools import combinations
from typing import Any

from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_http_methods, require_POST

from accounts.page_access import signed_in_required
from accounts.templatetags.page_tags import seconds_text
from accounts.throttling import scope_hit
from common.errors import ApplicationError
from projects.artifacts import artifact_list_for_run, artifact_tree_diff
from projects.pages import diff_files
from projects.selectors import project_get_for_user

from .comparison import LineCache, run_figures, run_list_for_compare
from .models import Run
from .run_pages import run_page_render
from .selectors import run_get_for_user, run_list_for_project
from .services import run_fork, run_generate

# Runs the Compare page offers to pick from (newest first).
_PICKABLE_RUNS = 50


def _chain_option(data: Any) -> dict[str, Any] | None:
    """The form's model choice as run options (None: the options the service defaults to)."""
    chain = (data.get("providers") or "").strip()
    return {"providers": [chain]} if chain else None


def _too_many(request: HttpRequest) -> str | None:
    """Why the user must wait before starting another run (the generate rate limit), or None."""
    wait = scope_hit(request, "generate")
    return None if wait is None else f"Too many runs started; try again in {wait} s."


@signed_in_required
@require_POST
def run_follow_up_page(request: HttpRequest, run_id: int) -> HttpResponse:
    """Follow up: a new run changes this run's tree as the prompt asks; open its page."""
    run = run_get_for_user(user=request.user, run_id=run_id)
    values = {
        "prompt": request.POST.get("prompt", ""),
        "providers": request.POST.get("providers", ""),
        "from": "coding",
    }
    refused = _too_many(request)
    if refused:
        return run_page_render(
            request, run, status=429, values=values, errors={"follow_up": [refused]}
        )
    try:
        follow_up = run_generate(
            project=run.project,
            user=request.user,
            prompt=values["prompt"],
            options=_chain_option(request.POST),
            base_run_id=run.pk,
        )
    except ApplicationError as exc:
        field = "follow_up_prompt" if exc.code == "invalid_prompt" else "follow_up"
        return run_page_render(
            request, run, status=400, values=values, errors={field: [exc.detail]}
        )
    return HttpResponseRedirect(reverse("page-run", args=[follow_up.pk]))


@signed_in_required
@require_POST
def run_fork_page(request: HttpRequest, run_id: int) -> HttpResponse:
    """Fork from here: a new run reuses this run's steps before the chosen stage or step and
    goes on from there (with the chosen model); open its page."""
    run = run_get_for_user(user=request.user, run_id=run_id)
    point = request.POST.get("from", "")
    values = {"prompt": "", "providers": request.POST.get("providers", ""), "from": point}
    refused = _too_many(request)
    if refused:
        return run_page_render(request, run, status=429, values=values, errors={"fork": [refused]})
    try:
        fork = run_fork(
            run=run, user=request.user, point=point, options=_chain_option(request.POST)
        )
    except ApplicationError as exc:
        return run_page_render(
            request, run, status=400, values=values, errors={"fork": [exc.detail]}
        )
    return HttpResponseRedirect(reverse("page-run", args=[fork.pk]))


def _picked_run_ids(request: HttpRequest) -> list[int]:
    """The runs ticked on the Compare form (``?runs=3&runs=5``, or ``?runs=3,5``)."""
    ids = []
    for raw in request.GET.getlist("runs"):
        for part in raw.split(","):
            part = part.strip()
            if not part.isdigit():
                raise ApplicationError("Pick runs from the list.", code="invalid")
            ids.append(int(part))
    return ids


def _origin_text(run: Run) -> str:
    if run.forked_from_id:
        return f"fork of run {run.forked_from_id} from {run.fork_point}"
    if run.base_run_id:
        return f"follow-up of run {run.base_run_id}"
    return "fresh start"


def _compared(runs: list[Run], pair: tuple[Run, Run]) -> dict[str, Any]:
    """Each run's figures (as compare shows them) and the diff of ``pair``."""
    cache: LineCache = {}
    columns = []
    for run in runs:
        figures = run_figures(run=run, cache=cache)
        wall = figures["wall_seconds"]
        columns.append(
            {
                "run": run,
                "f": figures,
                "origin": _origin_text(run),
                "wall": seconds_text(wall) if wall is not None else "",
            }
        )
    diff = None
    if all(artifact_list_for_run(run=run).exists() for run in pair):
        tree_diff = artifact_tree_diff(from_run=pair[0], to_run=pair[1])
        diff = {"diff": tree_diff, "files": diff_files(tree_diff, "unified")}
    return {"columns": columns, "diff": diff, "pair": pair}


@signed_in_required
@require_http_methods(["GET"])
def project_compare_page(request: HttpRequest, project_id: int) -> HttpResponse:
    """Two or three runs of the project side by side (status, wall time, tokens, cost, steps
    reused, rounds, fix attempts, tests in the sandbox, lines) and the diff between two."""
    project = project_get_for_user(user=request.user, project_id=project_id)
    choices = list(run_list_for_project(project=project)[:_PICKABLE_RUNS])
    context: dict[str, Any] = {
        "nav": "projects",
        "tab": "compare",
        "project": project,
        "choices": choices,
        "picked": [],
        "errors": [],
    }
    status = 200
    try:
        picked = _picked_run_ids(request)
        context["picked"] = picked
        if picked:
            runs = sorted(run_list_for_compare(project=project, run_ids=picked), key=lambda r: r.pk)
            pairs = list(combinations(runs, 2))
            wanted = request.GET.get("diff", "")
            pair = next((p for p in pairs if f"{p[0].pk},{p[1].pk}" == wanted), pairs[0])
            context.update(_compared(runs, pair), pairs=pairs)
    except ApplicationError as exc:
        context["errors"] = [exc.detail]
        status = exc.status_code
    if not request.GET.get("runs") and len(choices) >= 2:
        context["picked"] = [choices[1].pk, choices[0].pk]
    return render(request, "pipeline/compare.html", context, status=status)
