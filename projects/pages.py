"""Dashboard pages of projects: the list at ``/``, create, rename, delete, files and diffs.

They read through ``projects.selectors`` and ``projects.artifacts`` and write through
``projects.services``, validating input with the API's serializers, like the REST endpoints.
Highlighting is Pygments' on the server; the browser receives HTML with classes only.
"""

from typing import Any

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import logout
from django.db.models import OuterRef, Subquery
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_protect
from django.views.decorators.http import require_http_methods, require_POST
from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexers import TextLexer, guess_lexer_for_filename
from pygments.util import ClassNotFound
from rest_framework.exceptions import ValidationError

from accounts.page_access import form_errors, page_user_signed_in, signed_in_required, validated
from accounts.pages import sign_in
from common.errors import ApplicationError, NotFound

from .api.serializers import ProjectInputSerializer, ProjectPatchSerializer
from .artifacts import (
    artifact_get,
    artifact_list_for_run,
    artifact_read,
    artifact_run_for_project,
    artifact_tree_diff,
)
from .diff_view import diff_rows_side_by_side, diff_rows_unified
from .models import Artifact, Project
from .selectors import project_get_for_user, project_list_for_user
from .services import project_create, project_delete, project_update


def _projects_with_latest_run(user: Any) -> Any:
    """The user's projects, each with its latest run's id and status (``None`` without runs)."""
    run_model: Any = Project.runs.rel.related_model  # projects does not import pipeline
    latest = run_model.objects.filter(project=OuterRef("pk")).order_by("-created_at", "-id")
    return (
        project_list_for_user(user=user)
        .annotate(
            latest_run_id=Subquery(latest.values("id")[:1]),
            latest_run_status=Subquery(latest.values("status")[:1]),
        )
        .order_by("-created_at", "-id")
    )


def _project_list(request: HttpRequest, *, status: int = 200, **extra: Any) -> HttpResponse:
    context = {
        "nav": "projects",
        "projects": _projects_with_latest_run(request.user),
        "values": {},
        "errors": {},
        **extra,
    }
    return render(request, "projects/list.html", context, status=status)


@never_cache
@csrf_protect
@require_http_methods(["GET", "POST"])
def home(request: HttpRequest) -> HttpResponse:
    """``/``: the sign-in page, or the signed-in user's projects."""
    if not page_user_signed_in(request):
        if request.user.is_authenticated:  # signed out elsewhere, or the MFA step skipped
            logout(request)
        return sign_in(request)
    request.signed_in = True  # type: ignore[attr-defined]
    if request.method == "POST":  # a sign-in form posted again by an already signed-in tab
        return HttpResponseRedirect("/")
    return _project_list(request)


@signed_in_required
@require_POST
def project_create_page(request: HttpRequest) -> HttpResponse:
    """Create a project, then open it."""
    values = {"name": request.POST.get("name", ""), "description": request.POST.get("description")}
    try:
        data = validated(ProjectInputSerializer, request.POST)
    except ValidationError as exc:
        return _project_list(request, status=400, values=values, errors=form_errors(exc))
    try:
        project = project_create(owner=request.user, **data)
    except ApplicationError as exc:  # the account's project cap
        return _project_list(
            request, status=exc.status_code, values=values, errors=form_errors(exc)
        )
    messages.success(request, f"Project “{project.name}” created.")
    return HttpResponseRedirect(reverse("page-project", args=[project.pk]))


@signed_in_required
@require_POST
def project_rename_page(request: HttpRequest, project_id: int) -> HttpResponse:
    """Rename a project (and change its description)."""
    project = project_get_for_user(user=request.user, project_id=project_id)
    try:
        data = validated(ProjectPatchSerializer, request.POST)
    except ValidationError as exc:
        for message in form_errors(exc).values():
            messages.error(request, " ".join(message))
        return HttpResponseRedirect(reverse("page-project", args=[project.pk]))
    project_update(project=project, data=data)
    messages.success(request, "Project saved.")
    return HttpResponseRedirect(reverse("page-project", args=[project.pk]))


@signed_in_required
@require_http_methods(["GET", "POST"])
def project_delete_page(request: HttpRequest, project_id: int) -> HttpResponse:
    """GET: ask for confirmation. POST: delete the project, its runs and its files."""
    project = project_get_for_user(user=request.user, project_id=project_id)
    if request.method == "POST":
        name = project.name
        project_delete(project=project)
        messages.success(request, f"Project “{name}” deleted.")
        return HttpResponseRedirect("/")
    return render(request, "projects/delete.html", {"nav": "projects", "project": project})


# --- files ----------------------------------------------------------------------------------


def _int_or_none(raw: str | None) -> int | None:
    if raw is None or raw == "":
        return None
    if not raw.isdigit():
        raise Http404("No such run.")
    return int(raw)


def _runs_with_files(project: Project) -> list[Any]:
    """The project's runs that stored files, newest first."""
    return list(
        project.runs.filter(id__in=Artifact.objects.filter(project=project).values("run_id"))
        .order_by("-created_at", "-id")
        .only("id", "status", "created_at", "prompt")
    )


def _tree(paths: list[str]) -> list[dict[str, Any]]:
    """Paths as nested folders: [{"name", "path"?, "children"?}], folders first."""
    root: dict[str, Any] = {}
    for path in paths:
        node = root
        parts = path.split("/")
        for part in parts[:-1]:
            node = node.setdefault(part + "/", {})
        node[parts[-1]] = path

    def build(node: dict[str, Any]) -> list[dict[str, Any]]:
        folders = sorted(k for k in node if k.endswith("/"))
        files = sorted(k for k in node if not k.endswith("/"))
        return [{"name": k, "children": build(node[k])} for k in folders] + [
            {"name": k, "path": node[k]} for k in files
        ]

    return build(root)


def _highlighted(path: str, data: bytes) -> dict[str, Any]:
    """The file as highlighted HTML, or why it is not shown."""
    if b"\x00" in data:
        return {"binary": True}
    if len(data) > settings.ARTIFACTS_DIFF_MAX_BYTES:
        return {"too_large": True}
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return {"binary": True}
    try:
        lexer = guess_lexer_for_filename(path, text)
    except ClassNotFound:
        lexer = TextLexer()
    formatter = HtmlFormatter(linenos="table", cssclass="highlight", wrapcode=True)
    return {"html": highlight(text, lexer, formatter), "language": lexer.name}


@signed_in_required
@require_http_methods(["GET"])
def project_files_page(request: HttpRequest, project_id: int) -> HttpResponse:
    """A run's tree of files, and one file highlighted (``?run=`` and ``?path=``)."""
    project = project_get_for_user(user=request.user, project_id=project_id)
    context: dict[str, Any] = {"nav": "projects", "project": project, "tab": "files"}
    context["runs"] = _runs_with_files(project)
    try:
        run = artifact_run_for_project(project=project, run_id=_int_or_none(request.GET.get("run")))
    except NotFound as exc:
        if request.GET.get("run"):
            raise Http404(exc.detail) from exc
        context["no_files"] = exc.detail
        return render(request, "projects/files.html", context)
    artifacts = list(artifact_list_for_run(run=run))
    context.update(run=run, artifacts=artifacts, tree=_tree([a.path for a in artifacts]))
    context["total_size"] = sum(a.size for a in artifacts)
    path = request.GET.get("path")
    if path:
        artifact = artifact_get(run=run, path=path)
        context["file"] = artifact
        context["view"] = _highlighted(artifact.path, artifact_read(artifact=artifact))
    return render(request, "projects/files.html", context)


def diff_files(diff: Any, view: str = "split") -> list[dict[str, Any]]:
    """The files of a ``TreeDiff`` as the diff template shows them: path, kind (added,
    removed, changed) and the rows of their text diff (None for binary or large files)."""
    rows = diff_rows_unified if view == "unified" else diff_rows_side_by_side
    files = []
    for path in sorted([*diff.added, *diff.removed, *diff.changed]):
        kind = "added" if path in diff.added else "removed" if path in diff.removed else "changed"
        text = diff.diffs.get(path)
        files.append({"path": path, "kind": kind, "rows": rows(text) if text else None})
    return files


@signed_in_required
@require_http_methods(["GET"])
def project_diff_page(request: HttpRequest, project_id: int) -> HttpResponse:
    """What changed between two runs' trees, side by side or unified (``?from=&to=&view=``)."""
    project = project_get_for_user(user=request.user, project_id=project_id)
    runs = _runs_with_files(project)
    view = "unified" if request.GET.get("view") == "unified" else "split"
    context: dict[str, Any] = {
        "nav": "projects",
        "project": project,
        "tab": "diff",
        "runs": runs,
        "view": view,
    }
    from_id = _int_or_none(request.GET.get("from"))
    to_id = _int_or_none(request.GET.get("to"))
    if from_id is None and len(runs) >= 2:
        from_id, to_id = runs[1].pk, runs[0].pk
    context.update(from_id=from_id, to_id=to_id)
    if from_id is None or to_id is None:
        return render(request, "projects/diff.html", context)
    from_run = artifact_run_for_project(project=project, run_id=from_id)
    to_run = artifact_run_for_project(project=project, run_id=to_id)
    diff = artifact_tree_diff(from_run=from_run, to_run=to_run)
    files = diff_files(diff, view)
    context.update(diff=diff, files=files, from_run=from_run, to_run=to_run)
    return render(request, "projects/diff.html", context)
