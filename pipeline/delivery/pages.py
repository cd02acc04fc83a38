"""The run page's delivery card: Push branch, Open pull request, the pull request's link and
state, and the diff against the imported tree.

Reads go through the owner-checked selectors, writes through ``run_deliver`` (what
``POST /runs/{id}/deliver`` calls). The card refreshes itself while a delivery is under way.
"""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_http_methods, require_POST

from accounts.page_access import signed_in_required
from common.errors import ApplicationError
from repositories.selectors import forge_connection_for_project

from ..models import Run, RunDelivery
from ..selectors import run_get_for_user
from .selectors import run_delivery_of, run_import_source
from .services import default_branch, run_deliver

# What the card says about each state of a delivery.
STATE_TEXT = {
    "waiting": "Waits for the run to complete, then goes to the forge.",
    "queued": "Queued: the branch is pushed in a moment.",
    "pushing": "Pushing the branch and updating the pull request…",
    "delivered": "Delivered.",
    "failed": "The delivery failed.",
}


def delivery_context(run: Run) -> dict[str, Any]:
    """What the delivery card shows of ``run`` (whose owner the caller checked)."""
    delivery = run_delivery_of(run)
    source = run_import_source(run)
    is_import = source is not None and source.run.pk == run.pk
    connection = forge_connection_for_project(project_id=run.project_id)
    in_flight = delivery is not None and (
        delivery.state in RunDelivery.IN_FLIGHT
        or (delivery.state == RunDelivery.State.WAITING and run.status == Run.Status.COMPLETED)
    )
    import_diff_url = None
    if source is not None and not is_import and run.status == Run.Status.COMPLETED:
        import_diff_url = (
            reverse("page-project-diff", args=[run.project_id])
            + f"?from={source.run.pk}&to={run.pk}"
        )
    return {
        "delivery": delivery,
        "delivery_text": STATE_TEXT.get(delivery.state, "") if delivery else "",
        "delivery_in_flight": in_flight,
        "delivery_forge": connection,
        "delivery_is_import": is_import,
        "can_deliver": (
            run.status == Run.Status.COMPLETED
            and not is_import
            and connection is not None
            and not in_flight
        ),
        "delivery_branch": delivery.branch if delivery else default_branch(run),
        "import_run": source.run if source is not None and not is_import else None,
        "import_diff_url": import_diff_url,
    }


@signed_in_required
@require_http_methods(["GET"])
def run_delivery_fragment(request: HttpRequest, run_id: int) -> HttpResponse:
    """The delivery card (the page asks for it again as the run and its delivery move)."""
    run = run_get_for_user(user=request.user, run_id=run_id)
    context = {"run": run, **delivery_context(run)}
    return render(request, "pipeline/_run_delivery.html", context)


@signed_in_required
@require_POST
def run_deliver_page(request: HttpRequest, run_id: int) -> HttpResponse:
    """Push branch (``pull_request=0``) or Open pull request (``pull_request=1``): the
    delivery ``POST /runs/{id}/deliver`` asks for; back to the run page."""
    run = run_get_for_user(user=request.user, run_id=run_id)
    pull_request = request.POST.get("pull_request") == "1"
    try:
        delivery = run_deliver(
            run=run,
            user=request.user,
            branch=(request.POST.get("branch") or "").strip() or None,
            pull_request=pull_request,
        )
    except ApplicationError as exc:
        messages.error(request, exc.detail)
    else:
        what = "the branch and its pull request" if pull_request else "the branch"
        messages.success(request, f"Delivering {what} ({delivery.branch}).")
    return HttpResponseRedirect(reverse("page-run", args=[run.pk]) + "#run-delivery")
