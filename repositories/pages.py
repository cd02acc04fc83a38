"""The project page's forge settings form: where deliveries go, with write-only secrets.

The form posts to ``forge_settings_page``, which writes through ``forge_connection_put`` (what
``PUT /projects/{id}/forge`` calls): a secret field left empty keeps the stored secret, and
no page ever shows one back, only whether it is set. A refusal is shown next to its field on
the forge settings page.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib import messages
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_http_methods, require_POST

from accounts.page_access import signed_in_required
from projects.models import Project
from projects.selectors import project_get_for_user

from .models import ForgeConnection
from .selectors import forge_connection_for_project
from .services import InvalidForgeSettings, forge_connection_delete, forge_connection_put

FIELDS = ("kind", "api_url", "repository", "remote_url")
SECRETS = ("token", "ssh_key", "webhook_secret")
# Under each secret's field: kept when stored (it is never shown back), else what it is for.
SECRET_HELP = {
    "token": (
        "A token is stored (never shown); leave the field empty to keep it.",
        "Needed to push and to open pull requests; stored encrypted, never shown again.",
    ),
    "webhook_secret": (
        "A secret is stored (never shown); leave the field empty to keep it.",
        "Optional: with it, review comments on delivered pull requests start follow-up runs.",
    ),
    "ssh_key": (
        "A key is stored (never shown); leave the field empty to keep it.",
        "Optional, for an ssh:// remote: OpenSSH or PEM, without a passphrase.",
    ),
}


def forge_form_context(
    project: Project,
    *,
    values: dict[str, str] | None = None,
    errors: dict[str, list[str]] | None = None,
) -> dict[str, Any]:
    """What the forge settings form shows for ``project`` (whose owner the caller checked)."""
    connection = forge_connection_for_project(project_id=project.pk)
    shown = {name: getattr(connection, name, "") if connection else "" for name in FIELDS}
    if connection is None:
        shown["kind"] = ForgeConnection.Kind.GITHUB
    kind = (values or shown).get("kind") or shown["kind"]
    has = {name: bool(connection and connection.has_secret(name)) for name in SECRETS}
    return {
        "forge": connection,
        "forge_values": {**shown, **(values or {})},
        "forge_errors": errors or {},
        "forge_kinds": ForgeConnection.Kind.choices,
        "forge_has": has,
        "forge_help": {name: SECRET_HELP[name][0 if has[name] else 1] for name in SECRETS},
        "forge_webhook_url": f"{settings.PUBLIC_BASE_URL}/hooks/{kind}/{project.pk}",
    }


@signed_in_required
@require_http_methods(["GET", "POST"])
def forge_settings_page(request: HttpRequest, project_id: int) -> HttpResponse:
    """GET: the form alone. POST: save the project's forge connection; back to the project."""
    project = project_get_for_user(user=request.user, project_id=project_id)
    if request.method == "GET":
        return _render(request, project)
    values = {name: (request.POST.get(name) or "").strip() for name in FIELDS}
    secrets = {name: request.POST.get(name) or "" for name in SECRETS}
    try:
        forge_connection_put(
            project=project,
            kind=values["kind"],
            repository=values["repository"],
            api_url=values["api_url"] or None,
            remote_url=values["remote_url"],
            # Left empty: the stored secret stays (the form never shows it back).
            **{name: value or None for name, value in secrets.items()},
        )
    except InvalidForgeSettings as exc:
        errors = exc.extra.get("errors") or {"__all__": [exc.detail]}
        return _render(request, project, values=values, errors=errors, status=400)
    messages.success(request, "Forge settings saved.")
    return HttpResponseRedirect(reverse("page-project", args=[project.pk]) + "#forge-title")


@signed_in_required
@require_POST
def forge_remove_page(request: HttpRequest, project_id: int) -> HttpResponse:
    """Forget the project's forge connection and its secrets."""
    project = project_get_for_user(user=request.user, project_id=project_id)
    connection = forge_connection_for_project(project_id=project.pk)
    if connection is not None:
        forge_connection_delete(connection=connection)
        messages.success(request, "Forge connection removed, with its secrets.")
    return HttpResponseRedirect(reverse("page-project", args=[project.pk]) + "#forge-title")


def _render(
    request: HttpRequest,
    project: Project,
    *,
    values: dict[str, str] | None = None,
    errors: dict[str, list[str]] | None = None,
    status: int = 200,
) -> HttpResponse:
    context = {
        "nav": "projects",
        "project": project,
        **forge_form_context(project, values=values, errors=errors),
    }
    return render(request, "repositories/forge.html", context, status=status)
