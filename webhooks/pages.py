"""The Webhooks section of a project's page: add an endpoint (its secret shown once), list the
endpoints, each one's latest deliveries with a Redeliver button, and delete an endpoint.

The section is loaded into the project page by htmx (``hx-get`` on load) and its forms post
with htmx and CSRF; each answer is the section (or its list) again. The list polls itself
every few seconds while a delivery is still open. Reads and writes go through the same
selectors and services as the API.
"""

from typing import Any

from django.contrib import messages
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_http_methods, require_POST
from rest_framework.exceptions import ValidationError

from accounts.page_access import form_errors, signed_in_required, validated
from common.errors import ApplicationError
from projects.selectors import project_get_for_user

from .api.serializers import EndpointInputSerializer
from .catalogue import EVENTS
from .models import Delivery
from .selectors import (
    delivery_get_for_endpoint,
    delivery_list_for_endpoint,
    endpoint_get_for_user,
    endpoint_list_for_project,
)
from .services import delivery_redeliver, endpoint_create, endpoint_delete

# Deliveries each endpoint shows on the page (the API lists more).
PAGE_DELIVERIES = 10
_OPEN = (Delivery.Status.PENDING, Delivery.Status.SENDING)


def _list_context(project: Any) -> dict[str, Any]:
    endpoints = []
    polling = False
    for endpoint in endpoint_list_for_project(project=project):
        deliveries = delivery_list_for_endpoint(endpoint=endpoint, limit=PAGE_DELIVERIES)
        polling = polling or any(delivery.status in _OPEN for delivery in deliveries)
        labels = [EVENTS[name].label for name in endpoint.events if name in EVENTS]
        endpoints.append({"endpoint": endpoint, "labels": labels, "deliveries": deliveries})
    return {"project": project, "endpoints": endpoints, "polling": polling}


def _section(request: HttpRequest, project: Any, *, status: int = 200, **extra: Any) -> Any:
    context = {
        **_list_context(project),
        "events": list(EVENTS.values()),
        "values": {"url": "", "events": list(EVENTS)},
        "errors": {},
        **extra,
    }
    return render(request, "webhooks/_section.html", context, status=status)


def _list(request: HttpRequest, project: Any, *, notice: str = "") -> HttpResponse:
    context = {**_list_context(project), "notice": notice}
    return render(request, "webhooks/_list.html", context)


def _back_to_project(project_id: int) -> HttpResponse:
    return HttpResponseRedirect(reverse("page-project", args=[project_id]))


@signed_in_required
@require_http_methods(["GET", "POST"])
def project_webhooks_section(request: HttpRequest, project_id: int) -> HttpResponse:
    """GET: the section. POST: add an endpoint, then the section with its secret, once."""
    project = project_get_for_user(user=request.user, project_id=project_id)
    if request.method == "GET":
        return _section(request, project)
    values = {"url": request.POST.get("url", ""), "events": request.POST.getlist("events")}
    try:
        data = validated(
            EndpointInputSerializer, {"url": values["url"], "events": values["events"]}
        )
        endpoint, secret = endpoint_create(project=project, **data)
    except (ValidationError, ApplicationError) as exc:
        errors = form_errors(exc, field="url")
        return _section(request, project, status=400, values=values, errors=errors)
    if not request.headers.get("HX-Request"):
        context = {"nav": "projects", "project": project, "endpoint": endpoint, "secret": secret}
        return render(request, "webhooks/created.html", context, status=201)
    return _section(request, project, status=201, created={"endpoint": endpoint, "secret": secret})


@signed_in_required
@require_http_methods(["GET"])
def project_webhooks_list(request: HttpRequest, project_id: int) -> HttpResponse:
    """The endpoints and their latest deliveries (what the section polls)."""
    project = project_get_for_user(user=request.user, project_id=project_id)
    return _list(request, project)


@signed_in_required
@require_POST
def webhook_delete_page(request: HttpRequest, webhook_id: int) -> HttpResponse:
    """Delete an endpoint and its deliveries."""
    endpoint = endpoint_get_for_user(user=request.user, endpoint_id=webhook_id)
    project = endpoint.project
    endpoint_delete(endpoint=endpoint)
    if not request.headers.get("HX-Request"):
        messages.success(request, "Webhook endpoint deleted.")
        return _back_to_project(project.pk)
    return _list(request, project)


@signed_in_required
@require_POST
def webhook_redeliver_page(request: HttpRequest, webhook_id: int, delivery_id: int) -> HttpResponse:
    """Send a delivery again (same webhook-id); the list again."""
    endpoint = endpoint_get_for_user(user=request.user, endpoint_id=webhook_id)
    delivery = delivery_get_for_endpoint(endpoint=endpoint, delivery_id=delivery_id)
    notice = ""
    try:
        delivery_redeliver(delivery=delivery)
    except ApplicationError as exc:
        notice = exc.detail
    if not request.headers.get("HX-Request"):
        if notice:
            messages.error(request, notice)
        return _back_to_project(endpoint.project_id)
    return _list(request, endpoint.project, notice=notice)
