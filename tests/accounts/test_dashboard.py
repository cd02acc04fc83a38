"""The dashboard at ``/``: session sign-in with the MFA step, OAuth buttons, the project list."""

import re

import pytest
from django.test import Client, override_settings

from tests.accounts.conftest import enable_mfa, totp_code
from tests.factories import DEFAULT_PASSWORD, ProjectFactory

pytestmark = pytest.mark.django_db


def _csrf(client: Client) -> str:
    page = client.get("/")
    match = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.content.decode())
    assert match is not None
    return match.group(1)


def _post(client: Client, data: dict):
    return client.post("/", {"csrfmiddlewaretoken": _csrf(client), **data})


@pytest.fixture
def browser() -> Client:
    return Client(enforce_csrf_checks=True)


@pytest.fixture
def mfa_user(user):
    device, codes = enable_mfa(user)
    return {"user": user, "device": device, "backup_codes": codes}


def test_the_sign_in_page_offers_password_and_both_providers_as_csrf_protected_posts(
    browser, settings
):
    settings.SOCIAL_AUTH_GOOGLE_KEY = "google-client"
    settings.SOCIAL_AUTH_GITHUB_KEY = "github-client"
    html = browser.get("/").content.decode()
    assert 'name="password"' in html
    assert re.search(r'<form[^>]*method="post"[^>]*action="/auth/oauth/google/"', html)
    assert re.search(r'<form[^>]*method="post"[^>]*action="/auth/oauth/github/"', html)
    assert html.count("csrfmiddlewaretoken") >= 3


def test_the_sign_in_page_offers_no_provider_that_is_not_configured(browser, settings):
    settings.SOCIAL_AUTH_GOOGLE_KEY = ""
    settings.SOCIAL_AUTH_GITHUB_KEY = "github-client"
    html = browser.get("/").content.decode()
    assert "Sign in with GitHub" in html
    assert "Sign in with Google" not in html


def test_signing_in_shows_only_the_users_projects(browser, user, other_user):
    ProjectFactory(owner=user, name="Mine")
    ProjectFactory(owner=other_user, name="Theirs")
    response = _post(browser, {"email": user.email, "password": DEFAULT_PASSWORD})
    assert response.status_code == 302
    html = browser.get("/").content.decode()
    assert "Mine" in html
    assert "Theirs" not in html


def test_a_wrong_password_shows_an_error_and_does_not_sign_in(browser, user):
    response = _post(browser, {"email": user.email, "password": "wrong-wrong-1"})
    assert response.status_code == 400
    assert "Invalid email or password" in response.content.decode()
    assert "Your projects" not in browser.get("/").content.decode()


def test_a_post_without_csrf_is_403(browser, user):
    response = browser.post("/", {"email": user.email, "password": DEFAULT_PASSWORD})
    assert response.status_code == 403


def test_with_mfa_on_the_password_alone_leads_to_the_mfa_step(browser, mfa_user):
    _post(browser, {"email": mfa_user["user"].email, "password": DEFAULT_PASSWORD})
    html = browser.get("/").content.decode()
    assert "Two-factor check" in html
    assert "Your projects" not in html


def test_the_mfa_step_is_not_yet_a_signed_in_session(browser, mfa_user):
    _post(browser, {"email": mfa_user["user"].email, "password": DEFAULT_PASSWORD})
    assert "_auth_user_id" not in browser.session
    assert browser.get("/auth/me").status_code == 401


def test_a_totp_code_at_the_mfa_step_signs_in(browser, mfa_user):
    _post(browser, {"email": mfa_user["user"].email, "password": DEFAULT_PASSWORD})
    response = _post(browser, {"code": totp_code(mfa_user["device"])})
    assert response.status_code == 302
    assert "Your projects" in browser.get("/").content.decode()


def test_a_backup_code_at_the_mfa_step_signs_in(browser, mfa_user):
    _post(browser, {"email": mfa_user["user"].email, "password": DEFAULT_PASSWORD})
    _post(browser, {"code": mfa_user["backup_codes"][0]})
    assert "Your projects" in browser.get("/").content.decode()


def test_a_wrong_code_at_the_mfa_step_stays_on_it(browser, mfa_user):
    _post(browser, {"email": mfa_user["user"].email, "password": DEFAULT_PASSWORD})
    response = _post(browser, {"code": "zzzzz-zzzzz"})
    assert response.status_code == 400
    assert "Two-factor check" in response.content.decode()


def test_the_dashboard_session_after_mfa_can_call_the_api(browser, mfa_user):
    _post(browser, {"email": mfa_user["user"].email, "password": DEFAULT_PASSWORD})
    _post(browser, {"code": mfa_user["backup_codes"][0]})
    assert browser.get("/auth/me").status_code == 200


def test_dashboard_sign_in_is_throttled_per_ip(browser, user, settings):
    settings.ACCOUNTS_RATE_LIMITS = {**settings.ACCOUNTS_RATE_LIMITS, "login": "2/minute"}
    _post(browser, {"email": user.email, "password": "wrong-wrong-1"})
    _post(browser, {"email": user.email, "password": "wrong-wrong-1"})
    response = _post(browser, {"email": user.email, "password": DEFAULT_PASSWORD})
    assert response.status_code == 429
    assert int(response["Retry-After"]) >= 1


@override_settings(ACCOUNTS_LOGIN_LOCKOUT_THRESHOLD=2)
def test_dashboard_sign_in_shares_the_account_lockout_with_the_api(browser, user):
    from rest_framework.test import APIClient

    for _ in range(2):
        APIClient().post(
            "/auth/login", {"email": user.email, "password": "wrong-wrong-1"}, format="json"
        )
    response = _post(browser, {"email": user.email, "password": DEFAULT_PASSWORD})
    assert response.status_code == 429


def test_signing_out_ends_the_dashboard_session(browser, user):
    _post(browser, {"email": user.email, "password": DEFAULT_PASSWORD})
    browser.post("/signout", {"csrfmiddlewaretoken": _csrf(browser)})
    assert "Your projects" not in browser.get("/").content.decode()


def test_a_password_only_session_of_an_mfa_user_cannot_use_the_api(mfa_user):
    # A session opened without the OTP step (for instance through the admin's own login form)
    # does not authenticate API calls.
    client = Client()
    client.force_login(mfa_user["user"])
    assert client.get("/auth/me").status_code == 401
