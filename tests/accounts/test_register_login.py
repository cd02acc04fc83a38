"""Register, login by email, me, logout."""

import pytest
from rest_framework.test import APIClient

from accounts.models import User, UserSession
from tests.accounts.conftest import UA_LAPTOP, bearer, login, refresh

pytestmark = pytest.mark.django_db


def test_register_creates_a_user_and_answers_201():
    response = APIClient().post(
        "/auth/register",
        {"username": "ada", "email": "Ada@Example.com", "password": "Lovelace-Engine-1843"},
        format="json",
    )
    assert response.status_code == 201
    assert response.json() == {
        "id": User.objects.get().id,
        "username": "ada",
        "email": "ada@example.com",
    }


def test_register_refuses_a_common_password_naming_the_rule():
    response = APIClient().post(
        "/auth/register",
        {"username": "bob", "email": "bob@example.com", "password": "password123"},
        format="json",
    )
    assert response.status_code == 400
    assert "too common" in response.json()["detail"]


def test_register_refuses_a_taken_email_whatever_its_case(user):
    response = APIClient().post(
        "/auth/register",
        {"username": "other", "email": user.email.upper(), "password": "Lovelace-Engine-1843"},
        format="json",
    )
    assert response.status_code == 400
    assert response.json()["code"] == "email_taken"


def test_register_accepts_json_sent_the_way_curl_d_sends_it():
    body = '{"username": "eve", "email": "eve@example.com", "password": "Lovelace-Engine-1843"}'
    response = APIClient().generic(
        "POST", "/auth/register", body, content_type="application/x-www-form-urlencoded"
    )
    assert response.status_code == 201


def test_login_returns_tokens_and_the_user_and_opens_a_session(user):
    body = login(user)
    assert set(body) == {"access", "refresh", "user"}
    assert body["user"]["email"] == user.email
    session = UserSession.objects.get(user=user)
    assert session.device == "Firefox on Linux"
    assert session.user_agent == UA_LAPTOP


def test_login_with_a_wrong_password_is_401(user):
    response = APIClient().post(
        "/auth/login", {"email": user.email, "password": "nope-nope-nope"}, format="json"
    )
    assert response.status_code == 401
    assert response.json()["code"] == "invalid_credentials"


def test_login_for_an_unknown_email_answers_exactly_like_a_wrong_password(user):
    wrong = APIClient().post(
        "/auth/login", {"email": user.email, "password": "nope-nope-nope"}, format="json"
    )
    unknown = APIClient().post(
        "/auth/login", {"email": "nobody@example.com", "password": "nope-nope-nope"}, format="json"
    )
    assert (unknown.status_code, unknown.json()) == (wrong.status_code, wrong.json())


def test_login_email_is_case_insensitive(user):
    response = APIClient().post(
        "/auth/login",
        {"email": user.email.upper(), "password": "Correct-Horse-Battery-9"},
        format="json",
    )
    assert response.status_code == 200


def test_me_returns_the_user(tokens, user):
    response = bearer(tokens["access"]).get("/auth/me")
    assert response.status_code == 200
    assert response.json() == {
        "id": user.id,
        "username": user.username,
        "email": user.email,
        "email_verified": False,
        "mfa_enabled": False,
    }


def test_me_without_a_token_is_401():
    assert APIClient().get("/auth/me").status_code == 401


def test_logout_revokes_the_session_so_both_tokens_stop_working(tokens):
    response = APIClient().post("/auth/logout", {"refresh": tokens["refresh"]}, format="json")
    assert response.status_code == 204
    assert bearer(tokens["access"]).get("/auth/me").status_code == 401
    assert refresh(tokens["refresh"]).status_code == 401


def test_the_conftest_helper_mints_tokens_that_carry_a_live_session(api_client, user):
    response = api_client.get("/auth/sessions")
    assert response.status_code == 200
    assert [s["current"] for s in response.json()] == [True]


def test_a_garbage_forwarded_address_behind_a_proxy_does_not_break_login(user, settings):
    settings.ACCOUNTS_NUM_PROXIES = 1
    response = APIClient().post(
        "/auth/login",
        {"email": user.email, "password": "Correct-Horse-Battery-9"},
        format="json",
        HTTP_X_FORWARDED_FOR="not-an-ip",
    )
    assert response.status_code == 200
    assert UserSession.objects.get(user=user).ip is None


def test_behind_a_trusted_proxy_the_session_records_the_forwarded_client_address(user, settings):
    settings.ACCOUNTS_NUM_PROXIES = 1
    APIClient().post(
        "/auth/login",
        {"email": user.email, "password": "Correct-Horse-Battery-9"},
        format="json",
        HTTP_X_FORWARDED_FOR="203.0.113.7, 198.51.100.1",
    )
    assert UserSession.objects.get(user=user).ip == "198.51.100.1"
