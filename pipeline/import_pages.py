"""The dashboard's Import form: a project's repository from git (URL and ref) or an uploaded
.zip/.tar.gz, started through the service the API calls (``run_import_start``); the import
run's page then follows its progress like any run's.

The upload limit is checked while the body is parsed: the view installs the limiting upload
handler before anything reads the body, so CSRF is checked inside it (``csrf_exempt`` outside,
``signed_in_required``'s ``csrf_protect`` inside, as Django documents for upload handlers).
"""

from typing import Any

from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from accounts.page_access import page_user_signed_in, signed_in_required
from accounts.throttling import scope_hit
from common.errors import ApplicationError
from projects.selectors import project_get_for_user

from .pages import _project_page
from .services.imports import run_import_start, upload_handlers_install

# Which field of the form an error of ``run_import_start`` is about.
_FIELDS = {
    "archive_too_large": "archive",
    "bad_archive": "archive",
    "bad_ref": "git_ref",
    "outbound_refused": "git_url",
    "import_refused": "git_url",
}


def _import(request: HttpRequest, project_id: int) -> HttpResponse:
    project = project_get_for_user(user=request.user, project_id=project_id)
    source = request.POST.get("source", "git")
    values = {
        "source": source,
        "git_url": request.POST.get("git_url", ""),
        "git_ref": request.POST.get("git_ref", ""),
    }

    def again(status: int, field: str, message: str) -> HttpResponse:
        errors = {field: [message]}
        return _project_page(
            request, project, status=status, import_values=values, import_errors=errors
        )

    wait = scope_hit(request, "generate")
    if wait is not None:
        return again(429, "import", f"Too many runs started; try again in {wait} s.")
    kwargs: dict[str, Any] = {}
    if source == "archive":
        archive = request.FILES.get("archive")
        if archive is None:
            return again(400, "archive", "Choose a .zip or .tar.gz file to upload.")
        kwargs.update(archive=archive, archive_name=archive.name or "")
    else:
        if not values["git_url"].strip():
            return again(400, "git_url", "Give the repository's URL.")
        kwargs["git"] = {"url": values["git_url"], "ref": values["git_ref"]}
    try:
        run = run_import_start(project=project, user=request.user, **kwargs)
    except ApplicationError as exc:
        return again(exc.status_code, _FIELDS.get(exc.code, "import"), exc.detail)
    return HttpResponseRedirect(reverse("page-run", args=[run.pk]))


# Signed in and CSRF-checked (``signed_in_required`` checks the token, reading the body).
_signed_in_import = signed_in_required(_import)


@csrf_exempt
@require_POST
def project_import_page(request: HttpRequest, project_id: int) -> HttpResponse:
    """Start an import (git or an upload) and open the import run's page."""
    upload_handlers_install(request)
    try:
        return _signed_in_import(request, project_id)
    except ApplicationError as exc:  # the upload limit, met while the body was parsed
        request._mark_post_parse_error()  # type: ignore[attr-defined]  # nothing more is read
        if not page_user_signed_in(request):
            return HttpResponseRedirect("/")
        project = project_get_for_user(user=request.user, project_id=project_id)
        errors = {"archive": [exc.detail]}
        values = {"source": "archive", "git_url": "", "git_ref": ""}
        return _project_page(
            request, project, status=exc.status_code, import_values=values, import_errors=errors
        )
