"""Wrong current passwords on the password-change form and ``POST /auth/password`` count like
failed sign-ins, into the account's one lockout: past the threshold the API answers 429, the
page says so in plain words, and even the right password is refused until it frees up."""

from typing import Any

import pytest
from django.test import Client

from tests.accounts.conftest import STRONG_PASSWORD, bearer, login
from tests.factories import DEFAULT_PASSWORD
from tests.page_helpers import page_post, signed_in_client

pytestmark = pytest.mark.django_db

THRESHOLD = 3


@pytest.fixture(autouse=True)
def _low_threshold(settings: Any) -> None:
    settings.ACCOUNTS_LOGIN_LOCKOUT_THRESHOLD = THRESHOLD


def api_change(client: Any, current: str) -> Any:
    body = {"current_password": current, "new_password": STRONG_PASSWORD}
    return client.post("/auth/password", body, format="json")


def page_change(client: Client, current: str) -> Any:
    body = {"current_password": current, "new_password": STRONG_PASSWORD}
    return page_post(client, "/account/password", body, form_page="/account")


def test_wrong_current_passwords_on_the_api_lock_the_account_even_for_the_right_one(user: Any):
    client = bearer(login(user)["access"])

    wrong = [api_change(client, f"guess-{n}").status_code for n in range(THRESHOLD)]
    right = api_change(client, DEFAULT_PASSWORD)

    user.refresh_from_db()
    assert (wrong, right.status_code, right.json()["code"]) == (
        [400] * THRESHOLD,
        429,
        "login_locked",
    )
    assert int(right["Retry-After"]) > 0
    assert user.check_password(DEFAULT_PASSWORD)


def test_wrong_current_passwords_on_the_api_lock_sign_in_too(user: Any) -> None:
    client = bearer(login(user)["access"])
    for n in range(THRESHOLD):
        api_change(client, f"guess-{n}")

    response = client.post(
        "/auth/login", {"email": user.email, "password": DEFAULT_PASSWORD}, format="json"
    )

    assert (response.status_code, response.json()["code"]) == (429, "login_locked")


def test_failed_sign_ins_lock_the_password_change(user: Any) -> None:
    client = bearer(login(user)["access"])
    for n in range(THRESHOLD):
        client.post("/auth/login", {"email": user.email, "password": f"guess-{n}"}, format="json")

    response = api_change(client, DEFAULT_PASSWORD)

    assert (response.status_code, response.json()["code"]) == (429, "login_locked")


def test_wrong_current_passwords_on_the_page_lock_the_account_with_a_plain_message(user: Any):
    browser = signed_in_client(user)

    wrong = [page_change(browser, f"guess-{n}").status_code for n in range(THRESHOLD)]
    right = page_change(browser, DEFAULT_PASSWORD)

    user.refresh_from_db()
    assert (wrong, right.status_code) == ([400] * THRESHOLD, 429)
    assert "Too many failed sign-in attempts. Try again later." in right.content.decode()
    assert user.check_password(DEFAULT_PASSWORD)


def test_the_page_and_the_api_share_one_count(user: Any) -> None:
    browser = signed_in_client(user)
    client = bearer(login(user)["access"])
    page_change(browser, "guess-page")
    api_change(client, "guess-api-1")
    api_change(client, "guess-api-2")

    response = page_change(browser, DEFAULT_PASSWORD)

    assert response.status_code == 429
