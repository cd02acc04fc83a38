"""Password reset by email (Django's form, mail backend and ``default_token_generator``):
the same answer for every address, a link on PUBLIC_BASE_URL that works once and expires,
and a reset that revokes every session of the account (device sessions and cookies)."""

import re
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.tokens import default_token_generator
from django.core import mail
from django.test import Client
from rest_framework.test import APIClient

from accounts.models import User, UserSession
from tests.accounts.conftest import STRONG_PASSWORD, bearer, login, refresh
from tests.factories import DEFAULT_PASSWORD
from tests.page_helpers import csrf_token_of, page_post, signed_in_client

pytestmark = pytest.mark.django_db

NEW_PASSWORD = "Babbage-Difference-1822"  # noqa: S105


def ask(email: str, **headers: Any) -> Any:
    return APIClient().post("/auth/password/reset", {"email": email}, format="json", **headers)


def mailed_link(to: str) -> tuple[str, str, str]:
    """The path, uid and token of the last reset link mailed to ``to``."""
    body = str([m for m in mail.outbox if to in m.to][-1].body)
    found = re.search(r"https?://[^/\s]+(/password/reset/([^/\s]+)/([^/\s]+))", body)
    assert found is not None, body
    return found.group(1), found.group(2), found.group(3)


def confirm(uid: str, token: str, new_password: str = NEW_PASSWORD) -> Any:
    body = {"uid": uid, "token": token, "new_password": new_password}
    return APIClient().post("/auth/password/reset/confirm", body, format="json")


def test_asking_mails_a_link_on_the_public_address_not_the_request_host(user, settings):
    settings.PUBLIC_BASE_URL = "https://aiflow.example.org"
    settings.ALLOWED_HOSTS = ["*"]

    response = ask(user.email.upper(), HTTP_HOST="attacker.example")

    assert response.status_code == 202
    assert [m.to for m in mail.outbox] == [[user.email]]
    assert mail.outbox[0].subject == "Reset your password"
    assert "https://aiflow.example.org/password/reset/" in mail.outbox[0].body
    assert "attacker.example" not in mail.outbox[0].body


def test_an_unknown_address_gets_the_same_answer_and_no_mail(user):
    known, unknown = ask(user.email), ask("nobody@example.com")

    assert (unknown.status_code, unknown.json()) == (known.status_code, known.json())
    assert len(mail.outbox) == 1


def test_the_reset_revokes_every_session_of_the_account(user):
    device = login(user)
    browser = signed_in_client(user)
    ask(user.email)
    _, uid, token = mailed_link(user.email)

    response = confirm(uid, token)

    assert response.status_code == 204
    assert bearer(device["access"]).get("/auth/me").status_code == 401
    assert refresh(device["refresh"]).status_code == 401
    assert browser.get("/projects").status_code == 401
    assert UserSession.objects.filter(user=user, revoked_at__isnull=True).count() == 0


def test_after_the_reset_the_new_password_signs_in_and_the_old_one_does_not(user):
    ask(user.email)
    _, uid, token = mailed_link(user.email)
    confirm(uid, token)

    old = APIClient().post(
        "/auth/login", {"email": user.email, "password": DEFAULT_PASSWORD}, format="json"
    )

    assert (old.status_code, login(user, password=NEW_PASSWORD)["user"]["id"]) == (401, user.id)


def test_the_link_works_once(user):
    ask(user.email)
    _, uid, token = mailed_link(user.email)

    first, second = confirm(uid, token), confirm(uid, token, new_password=STRONG_PASSWORD)

    assert (first.status_code, second.status_code) == (204, 400)
    assert second.json()["code"] == "reset_link_invalid"
    user.refresh_from_db()
    assert user.check_password(NEW_PASSWORD)


def test_an_expired_link_is_refused(user, settings, monkeypatch):
    ask(user.email)
    _, uid, token = mailed_link(user.email)
    later = default_token_generator._now() + timedelta(seconds=settings.PASSWORD_RESET_TIMEOUT + 60)
    monkeypatch.setattr(default_token_generator, "_now", lambda: later)

    response = confirm(uid, token)

    assert (response.status_code, response.json()["code"]) == (400, "reset_link_invalid")
    user.refresh_from_db()
    assert user.check_password(DEFAULT_PASSWORD)


def test_the_new_password_must_pass_the_validators(user):
    ask(user.email)
    _, uid, token = mailed_link(user.email)

    response = confirm(uid, token, new_password="password123")

    assert (response.status_code, response.json()["code"]) == (400, "invalid")
    user.refresh_from_db()
    assert user.check_password(DEFAULT_PASSWORD)


def test_asking_is_limited_per_address_whoever_asks(user, settings):
    settings.ACCOUNTS_RATE_LIMITS = {**settings.ACCOUNTS_RATE_LIMITS, "password_reset": "2/hour"}

    answers = [ask(user.email, REMOTE_ADDR=f"10.0.0.{n}").status_code for n in range(3)]

    assert (answers, len(mail.outbox)) == ([202, 202, 202], 2)


def test_the_owner_of_a_squatted_address_takes_the_account_over_by_a_reset(register):
    # Someone registered the address with a password they chose; its owner cannot confirm
    # the verification link without that password, but can reset it by email.
    register("victim@example.com", username="mallory", password=STRONG_PASSWORD)
    squatter = login(User.objects.get(), password=STRONG_PASSWORD)
    ask("victim@example.com")
    _, uid, token = mailed_link("victim@example.com")

    confirm(uid, token)

    owner = User.objects.get()
    assert owner.email_verified is True
    assert bearer(squatter["access"]).get("/auth/me").status_code == 401
    assert not owner.check_password(STRONG_PASSWORD)


def test_the_pages_reset_the_password_and_sign_every_device_out(user):
    device = login(user)
    browser = Client(enforce_csrf_checks=True)
    sent = page_post(browser, "/password/reset", {"email": user.email}, form_page="/password/reset")
    path, uid, _ = mailed_link(user.email)

    form = browser.get(path)
    set_password_url = form["Location"]
    token = csrf_token_of(browser.get(set_password_url).content.decode())
    done = browser.post(
        set_password_url,
        {
            "csrfmiddlewaretoken": token,
            "new_password1": NEW_PASSWORD,
            "new_password2": NEW_PASSWORD,
        },
    )

    assert "a link to choose a new password is on its way" in sent.content.decode()
    assert (form.status_code, set_password_url) == (302, f"/password/reset/{uid}/set-password")
    assert (done.status_code, done["Location"]) == (302, f"/?email={user.email}")
    assert bearer(device["access"]).get("/auth/me").status_code == 401
    assert signed_in_client(user, password=NEW_PASSWORD).get("/projects").status_code == 200


def test_the_page_refuses_a_used_link_in_plain_words(user):
    ask(user.email)
    path, uid, token = mailed_link(user.email)
    confirm(uid, token)

    page = Client().get(path, follow=True)

    assert "This password-reset link is not valid" in page.content.decode()


def test_the_sign_in_page_offers_the_reset():
    assert 'href="/password/reset"' in Client().get("/").content.decode()
