"""The Terminal tab: a ticket from the page endpoint, plain words when no terminal can start."""

import json
import re
from typing import Any

import pytest

from terminal.tickets import ticket_consume
from tests.factories import UserFactory
from tests.page_helpers import csrf_token_of, signed_in_client

pytestmark = pytest.mark.django_db


@pytest.fixture
def browser(user: Any) -> Any:
    return signed_in_client(user)


def _ticket(client: Any, project_id: int) -> Any:
    token = csrf_token_of(client.get(f"/app/projects/{project_id}/terminal").content.decode())
    return client.post(
        f"/app/projects/{project_id}/terminal/ticket", HTTP_X_CSRFTOKEN=token, HTTP_HOST="127.0.0.1"
    )


def test_the_ticket_endpoint_issues_a_single_use_ticket_for_the_owners_project(browser, project):
    response = _ticket(browser, project.id)
    ws_url = json.loads(response.content)["ws_url"]
    ticket = ws_url.rsplit("ticket=", 1)[1]
    assert response.status_code == 201
    assert ws_url.startswith(f"ws://127.0.0.1/ws/terminal/{project.id}/?ticket=")
    claim = ticket_consume(ticket=ticket, project_id=project.id)
    assert (claim.user_id, claim.project_id) == (project.owner_id, project.id)
    assert ticket_consume(ticket=ticket, project_id=project.id) is None


def test_another_users_project_gets_no_ticket(project):
    stranger = signed_in_client(UserFactory())
    token = csrf_token_of(stranger.get("/account").content.decode())
    response = stranger.post(f"/app/projects/{project.id}/terminal/ticket", HTTP_X_CSRFTOKEN=token)
    assert response.status_code == 404


def test_the_ticket_endpoint_needs_csrf(browser, project):
    assert browser.post(f"/app/projects/{project.id}/terminal/ticket").status_code == 403


def test_without_a_sandbox_the_page_says_so_and_starts_no_terminal(browser, project, settings):
    settings.SANDBOX_MODE = "bubblewrap"
    settings.SANDBOX_BWRAP = "no-such-bwrap-binary"
    html = browser.get(f"/app/projects/{project.id}/terminal").content.decode()
    assert "The sandbox is not available on this server" in html
    assert "js/terminal.js" not in html


def test_a_disabled_terminal_is_explained(browser, project, settings):
    settings.TERMINAL_ENABLED = False
    html = browser.get(f"/app/projects/{project.id}/terminal").content.decode()
    assert "The terminal is turned off on this server" in html


def test_the_terminal_page_admits_xterms_styles_by_this_responses_nonce(browser, project):
    response = browser.get(f"/app/projects/{project.id}/terminal")
    nonce = re.search(
        r'<script type="module" src="[^"]+terminal\.js" nonce="([^"]+)"', response.content.decode()
    )
    assert nonce is not None
    assert f"'nonce-{nonce.group(1)}'" in response["Content-Security-Policy"]
    assert "unsafe-inline" not in response["Content-Security-Policy"]
