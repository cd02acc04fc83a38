"""A terminal opened from the dashboard is bound to the browser's device session: signing that
browser out, revoking its session from another device, a password change, MFA turned on
elsewhere and a deactivation each end the open shell at once, by the push to the session's
group (the watchdog's own database check is turned off here, so only the push can do it)."""

import asyncio
import json
from collections.abc import Callable
from typing import Any

import pytest
from channels.db import database_sync_to_async
from django.test import Client
from django_otp.plugins.otp_totp.models import TOTPDevice

from accounts.services import user_deactivate
from tests.accounts.conftest import STRONG_PASSWORD, bearer, login, totp_code
from tests.factories import DEFAULT_PASSWORD
from tests.page_helpers import csrf_token_of, page_post, signed_in_client
from tests.sandbox.helpers import sandbox_processes_after_settling
from tests.terminal.conftest import communicator, read_until

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("project_workspace")]


@pytest.fixture(autouse=True)
def _only_the_push_ends_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("terminal.consumers._REFRESH_TICKS", 10**9)


def dashboard_ticket(browser: Client, project_id: int) -> str:
    """The ticket the Terminal tab asks for (its page endpoint, with the page's CSRF token)."""
    page = browser.get(f"/app/projects/{project_id}/terminal").content.decode()
    response = browser.post(
        f"/app/projects/{project_id}/terminal/ticket", HTTP_X_CSRFTOKEN=csrf_token_of(page)
    )
    assert response.status_code == 201, response.content
    return str(json.loads(response.content)["ws_url"].rsplit("ticket=", 1)[1])


def sign_out(user: Any, browser: Client) -> None:
    page_post(browser, "/signout", {}, form_page="/account")


def revoke_from_another_device(user: Any, browser: Client) -> None:
    sid = browser.session["accounts_page_sid"]
    response = bearer(login(user)["access"]).delete(f"/auth/sessions/{sid}")
    assert response.status_code == 204


def change_the_password_elsewhere(user: Any, browser: Client) -> None:
    body = {"current_password": DEFAULT_PASSWORD, "new_password": STRONG_PASSWORD}
    response = bearer(login(user)["access"]).post("/auth/password", body, format="json")
    assert response.status_code == 204


def turn_mfa_on_elsewhere(user: Any, browser: Client) -> None:
    client = bearer(login(user)["access"])
    client.post("/auth/mfa/totp/setup")
    code = totp_code(TOTPDevice.objects.get(user=user, confirmed=False))
    response = client.post(
        "/auth/mfa/totp/confirm", {"code": code, "password": DEFAULT_PASSWORD}, format="json"
    )
    assert response.status_code == 200, response.content


def deactivate(user: Any, browser: Client) -> None:
    user.refresh_from_db()
    user_deactivate(user=user)


async def closing_frames(comm: Any) -> tuple[dict[str, Any], int | None]:
    """The exit frame and the close code the server ends the terminal with."""
    frames: list[dict[str, Any]] = []
    while True:
        frame = await comm.receive_output(timeout=15)
        frames.append(frame)
        if frame["type"] == "websocket.close":
            return json.loads(frames[-2]["text"]), frame.get("code")


@pytest.mark.parametrize(
    "end_it",
    [
        sign_out,
        revoke_from_another_device,
        change_the_password_elsewhere,
        turn_mfa_on_elsewhere,
        deactivate,
    ],
)
async def test_a_dashboard_terminal_ends_when_its_browser_session_ends(
    project: Any, user: Any, end_it: Callable[[Any, Client], None]
) -> None:
    browser = await database_sync_to_async(signed_in_client)(user)
    ticket = await database_sync_to_async(dashboard_ticket)(browser, project.pk)
    comm = communicator(project.pk, ticket)
    connected, _ = await comm.connect(timeout=15)
    assert connected
    await read_until(comm, "$ ")
    await comm.send_json_to({"type": "input", "data": "sleep 1000 & echo STARTED\n"})
    await read_until(comm, "STARTED")

    await database_sync_to_async(end_it)(user, browser)
    exit_frame, code = await closing_frames(comm)
    left = await asyncio.to_thread(sandbox_processes_after_settling)

    assert (exit_frame["reason"], code, left) == ("session_revoked", 4401, [])


async def test_a_dashboard_ticket_is_refused_once_its_browser_signed_out(
    project: Any, user: Any
) -> None:
    browser = await database_sync_to_async(signed_in_client)(user)
    ticket = await database_sync_to_async(dashboard_ticket)(browser, project.pk)
    await database_sync_to_async(sign_out)(user, browser)

    connected, code = await communicator(project.pk, ticket).connect(timeout=15)

    assert (connected, code) == (False, 4401)


async def test_a_dashboard_terminal_outlives_the_sign_out_of_another_device(
    project: Any, user: Any
) -> None:
    browser = await database_sync_to_async(signed_in_client)(user)
    other = await database_sync_to_async(signed_in_client)(user)
    ticket = await database_sync_to_async(dashboard_ticket)(browser, project.pk)
    comm = communicator(project.pk, ticket)
    await comm.connect(timeout=15)
    await read_until(comm, "$ ")

    await database_sync_to_async(sign_out)(user, other)
    await comm.send_json_to({"type": "input", "data": "echo STILL-HERE\n"})
    output = await read_until(comm, "STILL-HERE\r\n")
    await comm.disconnect()

    assert "STILL-HERE" in output
