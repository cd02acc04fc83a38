"""The Terminal tab: xterm.js in the page, a shell in the project's sandbox over WebSocket.

The page asks ``terminal_ticket`` (below) for a single-use ticket through the terminal
service, then opens ``/ws/terminal/{project_id}/?ticket=…``. When the terminal is disabled or
the sandbox cannot run here, the page says so in plain words instead.
"""

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.views.decorators.http import require_http_methods, require_POST

from accounts.page_access import page_session_id, signed_in_required
from common.errors import ApplicationError
from projects.sandbox import SandboxUnavailable, sandbox_ensure_available
from projects.selectors import project_get_for_user

from .services import terminal_ticket_create


def _unavailable_reason() -> str:
    """Why no terminal can start on this server ("" when one can)."""
    if not settings.TERMINAL_ENABLED:
        return "The terminal is turned off on this server (TERMINAL_ENABLED)."
    try:
        sandbox_ensure_available()
    except SandboxUnavailable as exc:
        return (
            f"The sandbox is not available on this server, so no terminal can start: {exc.detail}"
        )
    return ""


@signed_in_required
@require_http_methods(["GET"])
def terminal_page(request: HttpRequest, project_id: int) -> HttpResponse:
    """The terminal of a project: its workspace, filled from the latest run's files."""
    project = project_get_for_user(user=request.user, project_id=project_id)
    context = {
        "nav": "projects",
        "tab": "terminal",
        "project": project,
        "unavailable": _unavailable_reason(),
    }
    return render(request, "terminal/terminal.html", context)


@signed_in_required
@require_POST
def terminal_ticket(request: HttpRequest, project_id: int) -> JsonResponse:
    """A single-use ticket for the terminal socket (``terminal_ticket_create``), bound to
    this browser's device session: signing it out anywhere ends the terminal."""
    try:
        ticket = terminal_ticket_create(
            user=request.user, project_id=project_id, sid=page_session_id(request) or ""
        )
    except ApplicationError as exc:
        if exc.status_code == 404:
            raise
        return JsonResponse({"detail": exc.detail, "code": exc.code}, status=exc.status_code)
    scheme = "wss" if request.is_secure() else "ws"
    ws_url = f"{scheme}://{request.get_host()}/ws/terminal/{project_id}/?ticket={ticket}"
    return JsonResponse({"ws_url": ws_url}, status=201)
