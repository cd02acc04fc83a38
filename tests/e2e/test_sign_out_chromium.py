"""Signing a device out from another one ends everything its browser holds, in Chromium.

A staff member with MFA signs in, opens the admin, a running run's page (its SSE stream, and
a run socket made from the page with the cookie's ticket) and a project's terminal. From
another device, ``DELETE /auth/sessions/{id}`` signs that browser out: the terminal and the
run socket close (4401, pushed to them), the event stream ends and its reconnect is refused
(401), the API answers the cookie 401 and the admin sends it to the sign-in page.
"""

from typing import Any

import pytest
import requests

from pipeline.events import publish
from pipeline.models import Run
from tests.accounts.conftest import enable_mfa, totp_code
from tests.e2e.conftest import WAIT_MS, screenshot_dir
from tests.factories import DEFAULT_PASSWORD, ProjectFactory, UserFactory

pytestmark = [pytest.mark.slow, pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

# Asks for a run-socket ticket with the page's cookie and CSRF token, opens the socket, and
# notes how it closes (what any script of the page could do).
_OPEN_RUN_SOCKET = """async (runId) => {
  const csrf = JSON.parse(document.body.getAttribute("hx-headers"))["X-CSRFToken"];
  const response = await fetch(`/runs/${runId}/ws-ticket`, {
    method: "POST", headers: { "X-CSRFToken": csrf }, credentials: "same-origin",
  });
  const body = await response.json();
  window.__runSocket = { open: false, closed: null };
  const socket = new WebSocket(body.ws_url);
  socket.addEventListener("open", () => { window.__runSocket.open = true; });
  socket.addEventListener("close", (event) => { window.__runSocket.closed = event.code; });
  return response.status;
}"""


def _sign_in(page: Any, web_url: str, user: Any, device: Any) -> None:
    page.goto(web_url + "/")
    page.get_by_label("Email").fill(user.email)
    page.get_by_label("Password").fill(DEFAULT_PASSWORD)
    page.get_by_role("button", name="Sign in", exact=True).click()
    page.get_by_role("heading", name="Two-factor check").wait_for()
    page.get_by_label("Code").fill(totp_code(device))
    page.get_by_role("button", name="Verify").click()
    page.get_by_role("heading", name="Your projects").wait_for()


def _other_device(web_url: str, user: Any, backup_code: str) -> requests.Session:
    """Another device of the user, signed in over the API (password, then a backup code)."""
    client = requests.Session()
    first = client.post(
        f"{web_url}/auth/login",
        json={"email": user.email, "password": DEFAULT_PASSWORD},
        timeout=30,
    ).json()
    tokens = client.post(
        f"{web_url}/auth/mfa/verify",
        json={"mfa_token": first["mfa_token"], "code": backup_code},
        timeout=30,
    ).json()
    client.headers["Authorization"] = f"Bearer {tokens['access']}"
    return client


def _until(page: Any, condition: Any, what: str) -> None:
    """Let the page's events arrive until ``condition()`` holds (bounded, never timed)."""
    for _ in range(WAIT_MS // 200):
        if condition():
            return
        page.wait_for_timeout(200)
    raise AssertionError(f"never happened: {what}")


def test_signing_a_device_out_ends_its_cookie_streams_and_terminal(
    web_url: str, browser_context: Any, page: Any, watch: Any
) -> None:
    # The refused reconnect of the event stream and the refused API call show in the console.
    watch.allow("status of 401")
    watch.allow("EventSource")
    watch.allow("[object Event]")  # htmx's SSE extension logs the ended stream's error event
    staff = UserFactory(is_staff=True, is_superuser=True)
    device, backup_codes = enable_mfa(staff)
    project = ProjectFactory(owner=staff, name="Signed out elsewhere")
    run = Run.objects.create(
        project=project, created_by=staff, prompt="p", status=Run.Status.RUNNING
    )
    publish(run_id=run.pk, type="run.started")

    _sign_in(page, web_url, staff, device)
    page.goto(web_url + "/admin/")
    page.get_by_role("heading", name="Site administration").wait_for()

    run_tab = browser_context.new_page()
    watch.attach(run_tab)
    stream_statuses: list[int] = []
    run_tab.on(
        "response",
        lambda response: (
            stream_statuses.append(response.status) if "/events" in response.url else None
        ),
    )
    run_tab.goto(f"{web_url}/app/runs/{run.pk}")
    _until(run_tab, lambda: 200 in stream_statuses, "the run page's event stream opened")
    assert run_tab.evaluate(_OPEN_RUN_SOCKET, run.pk) == 201
    _until(run_tab, lambda: run_tab.evaluate("window.__runSocket.open"), "the run socket opened")

    page.goto(f"{web_url}/app/projects/{project.pk}/terminal")
    page.get_by_role("status").filter(has_text="Connected").wait_for()

    opened = len(stream_statuses)
    other = _other_device(web_url, staff, backup_codes[0])
    browser_sid = next(
        s["id"] for s in other.get(f"{web_url}/auth/sessions").json() if not s["current"]
    )
    assert other.delete(f"{web_url}/auth/sessions/{browser_sid}").status_code == 204

    page.get_by_role("status").filter(has_text="This browser was signed out").wait_for()
    page.screenshot(path=str(screenshot_dir() / "terminal-signed-out.png"))
    _until(
        run_tab,
        lambda: run_tab.evaluate("window.__runSocket.closed") == 4401,
        "the run socket closed with 4401",
    )
    _until(run_tab, lambda: 401 in stream_statuses[opened:], "the stream's reconnect was refused")
    api = page.request.get(f"{web_url}/projects")
    page.goto(web_url + "/admin/")
    page.get_by_role("heading", name="Sign in").wait_for()
    page.screenshot(path=str(screenshot_dir() / "admin-signed-out.png"))

    # The SSE client may try again more than once before it gives up: every try is refused.
    assert (stream_statuses[:opened], set(stream_statuses[opened:])) == ([200] * opened, {401})
    assert (api.status, api.json()["code"]) == (401, "not_authenticated")
    assert page.url == web_url + "/"
    run_tab.close()
