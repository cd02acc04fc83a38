"""A dashboard cookie is worth what the device session behind it is worth: signed out anywhere
(the Account page, ``DELETE /auth/sessions/{id}`` from another device, ``POST /auth/logout``)
it is refused by every path that admits a cookie: the API (DRF's session authentication),
the admin, file and zip downloads, the ticket endpoints and WebSocket handshakes."""

from pathlib import Path
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from django.conf import settings
from django.test import Client
from rest_framework.test import APIClient

from accounts.cookie_sessions import LiveCookieAuthMiddlewareStack
from accounts.models import UserSession
from pipeline.models import Run
from projects.artifacts import artifact_store_tree
from projects.models import Project
from tests.accounts.conftest import bearer, enable_mfa, login, totp_code
from tests.factories import DEFAULT_PASSWORD, UserFactory
from tests.page_helpers import csrf_token_of, page_post, signed_in_client

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _media(tmp_path: Path, settings: Any) -> None:
    settings.MEDIA_ROOT = str(tmp_path / "media")


def cookie_sid(client: Client) -> str:
    """The id of the device session behind a signed-in test client's cookie."""
    return str(client.session["accounts_page_sid"])


def other_device(user: Any) -> APIClient:
    """Another device of ``user``, signed in over the API."""
    return bearer(login(user)["access"])


def api_post(client: Client, url: str, data: dict[str, Any]) -> Any:
    """A JSON POST the dashboard's scripts would make: the cookie and its CSRF token."""
    token = csrf_token_of(client.get("/account").content.decode())
    return client.post(url, data, content_type="application/json", HTTP_X_CSRFTOKEN=token)


@pytest.fixture
def browser(user: Any) -> Client:
    return signed_in_client(user)


@pytest.fixture
def finished_run(project: Project) -> Run:
    run = Run.objects.create(project=project, prompt="p", status=Run.Status.COMPLETED)
    artifact_store_tree(run=run, files={"main.py": "print(1)\n"})
    return run


def test_signing_in_opens_one_device_session_named_in_the_cookie(browser: Client, user: Any):
    session = UserSession.objects.get(user=user)
    assert (cookie_sid(browser), session.revoked_at) == (str(session.pk), None)


def test_a_cookie_deleted_from_another_device_gets_401_from_the_api(browser: Client, user: Any):
    before = browser.get("/projects").status_code

    deleted = other_device(user).delete(f"/auth/sessions/{cookie_sid(browser)}")
    after = browser.get("/projects")

    assert (before, deleted.status_code, after.status_code) == (200, 204, 401)
    assert after.json()["code"] == "not_authenticated"


def test_a_cookie_deleted_from_another_device_cannot_create_a_project(
    browser: Client, user: Any
) -> None:
    token = csrf_token_of(browser.get("/account").content.decode())
    other_device(user).delete(f"/auth/sessions/{cookie_sid(browser)}")

    response = browser.post(
        "/projects", {"name": "after"}, content_type="application/json", HTTP_X_CSRFTOKEN=token
    )

    assert (response.status_code, Project.objects.filter(name="after").exists()) == (401, False)


def test_a_browser_signed_out_from_the_account_page_of_another_gets_401(user: Any) -> None:
    first, second = signed_in_client(user), signed_in_client(user)

    page_post(first, f"/account/sessions/{cookie_sid(second)}/sign-out", {}, form_page="/account")

    assert (first.get("/projects").status_code, second.get("/projects").status_code) == (200, 401)


def test_post_auth_logout_with_the_cookie_ends_it_everywhere(browser: Client, user: Any) -> None:
    sid = cookie_sid(browser)
    copy = Client()
    copy.cookies[settings.SESSION_COOKIE_NAME] = browser.cookies[settings.SESSION_COOKIE_NAME].value

    response = api_post(browser, "/auth/logout", {})

    assert response.status_code == 204
    assert UserSession.objects.get(pk=sid).revoked_reason == "logout"
    assert (browser.get("/projects").status_code, copy.get("/projects").status_code) == (401, 401)


def test_post_auth_logout_with_the_cookie_needs_csrf(browser: Client) -> None:
    response = browser.post("/auth/logout", {}, content_type="application/json")

    assert (response.status_code, browser.get("/projects").status_code) == (403, 200)


def test_post_auth_logout_with_a_bearer_token_alone_ends_its_session(user: Any) -> None:
    tokens = login(user)
    client = bearer(tokens["access"])

    response = client.post("/auth/logout", {}, format="json")

    assert (response.status_code, client.get("/projects").status_code) == (204, 401)


def test_post_auth_logout_without_a_session_or_a_refresh_token_is_401() -> None:
    response = APIClient().post("/auth/logout", {}, format="json")

    assert (response.status_code, response.json()["code"]) == (401, "not_authenticated")


def test_file_and_zip_downloads_refuse_a_cookie_deleted_elsewhere(
    browser: Client, user: Any, project: Project, finished_run: Run
) -> None:
    urls = [f"/projects/{project.pk}/files/main.py", f"/projects/{project.pk}/download"]
    before = [browser.get(url).status_code for url in urls]

    other_device(user).delete(f"/auth/sessions/{cookie_sid(browser)}")
    after = [browser.get(url).status_code for url in urls]

    assert (before, after) == ([200, 200], [401, 401])


def test_the_ticket_endpoints_refuse_a_cookie_deleted_elsewhere(
    browser: Client, user: Any, project: Project, finished_run: Run
) -> None:
    token = csrf_token_of(browser.get(f"/app/projects/{project.pk}/terminal").content.decode())
    other_device(user).delete(f"/auth/sessions/{cookie_sid(browser)}")

    terminal = browser.post(f"/app/projects/{project.pk}/terminal/ticket", HTTP_X_CSRFTOKEN=token)
    run_socket = browser.post(f"/runs/{finished_run.pk}/ws-ticket", HTTP_X_CSRFTOKEN=token)

    assert (terminal.status_code, terminal["Location"]) == (302, "/")
    assert run_socket.status_code == 401


def test_a_stream_of_a_cookie_deleted_elsewhere_is_refused(
    browser: Client, user: Any, finished_run: Run
) -> None:
    other_device(user).delete(f"/auth/sessions/{cookie_sid(browser)}")

    response = browser.get(f"/runs/{finished_run.pk}/events")

    assert response.status_code == 401


@pytest.fixture
def staff_browser() -> tuple[Any, Client]:
    """A staff member with MFA signed in to the dashboard past the MFA step."""
    staff = UserFactory.create(is_staff=True, is_superuser=True)
    device, _ = enable_mfa(staff)
    client = Client(enforce_csrf_checks=True)
    page_post(client, "/", {"email": staff.email, "password": DEFAULT_PASSWORD})
    page_post(client, "/", {"code": totp_code(device)})
    return staff, client


def test_the_admin_sends_a_cookie_deleted_elsewhere_to_its_sign_in_page(
    staff_browser: tuple[Any, Client],
) -> None:
    staff, client = staff_browser
    before = client.get("/admin/").status_code
    device = UserSession.objects.get(pk=cookie_sid(client))

    from accounts.services import session_revoke

    session_revoke(session=device, reason="signed_out_by_user")
    after = client.get("/admin/")

    assert (before, after.status_code, after["Location"]) == (
        200,
        302,
        "/admin/login/?next=/admin/",
    )
    assert (client.get(after["Location"])["Location"]) == "/"


def test_the_admins_log_out_revokes_the_device_session(
    staff_browser: tuple[Any, Client],
) -> None:
    staff, client = staff_browser
    sid = cookie_sid(client)
    token = csrf_token_of(client.get("/admin/password_change/").content.decode())

    client.post("/admin/logout/", {"csrfmiddlewaretoken": token})

    assert UserSession.objects.get(pk=sid).revoked_reason == "logout"


def _handshake_user(cookie: str) -> Any:
    """What ``scope["user"]`` is for a WebSocket handshake carrying ``cookie``."""
    seen: dict[str, Any] = {}

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        user = scope["user"]
        seen["user"] = (user.is_authenticated, getattr(user, "pk", None))

    async def handshake() -> None:
        scope = {
            "type": "websocket",
            "path": "/ws/",
            "headers": [(b"cookie", cookie.encode())],
        }
        await LiveCookieAuthMiddlewareStack(app)(scope, None, None)

    async_to_sync(handshake)()
    return seen["user"]


@pytest.mark.django_db(transaction=True)
def test_a_websocket_handshake_with_a_cookie_deleted_elsewhere_has_no_user(
    browser: Client, user: Any
) -> None:
    cookie = f"{settings.SESSION_COOKIE_NAME}={browser.cookies[settings.SESSION_COOKIE_NAME].value}"
    before = _handshake_user(cookie)

    other_device(user).delete(f"/auth/sessions/{cookie_sid(browser)}")
    after = _handshake_user(cookie)

    assert (before, after) == ((True, user.pk), (False, None))
