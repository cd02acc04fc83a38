"""Email verification: the mail sent at registration, its signed, expiring, single-use link
(browser page and API endpoint), confirmed only with the account's password or from a
session signed in as the account (never by opening it), asking for it again, and what an
unverified account may do."""

import re
import socket
from datetime import timedelta
from typing import Any

import pytest
from django.core import mail, signing
from django.test import Client, override_settings
from rest_framework.test import APIClient

from accounts.models import User
from accounts.services import email_verification_send, email_verification_token
from tests.accounts.conftest import STRONG_PASSWORD, bearer, login
from tests.factories import DEFAULT_PASSWORD
from tests.page_helpers import csrf_token_of, signed_in_client

pytestmark = pytest.mark.django_db

ADA = "ada@example.com"


def _link_path(message) -> str:
    found = re.search(r"(https?://[^/\s]+)(/auth/email/verify/\S+)", message.body)
    assert found is not None, message.body
    return found.group(2)


def _token(message) -> str:
    return _link_path(message).rsplit("/", 1)[1]


def _verify(token: str, password: str = STRONG_PASSWORD):
    """POST /auth/email/verify with the password ``register`` gives the account."""
    return APIClient().post(
        "/auth/email/verify", {"token": token, "password": password}, format="json"
    )


def _confirm(client: Client, path: str, data: dict) -> Any:
    """Open the link's page, then post its form (with its CSRF token) like a browser."""
    page = client.get(path).content.decode()
    return client.post(path, {"csrfmiddlewaretoken": csrf_token_of(page), **data})


def test_registration_mails_a_verification_link_to_the_new_address(settings, register):
    settings.PUBLIC_BASE_URL = "https://aiflow.example.org"
    assert register(ADA).status_code == 201
    assert len(mail.outbox) == 1
    message = mail.outbox[0]
    assert message.to == ["ada@example.com"]
    assert message.subject == "Verify your email address"
    assert "https://aiflow.example.org/auth/email/verify/" in message.body
    assert User.objects.get().email_verified is False


def test_the_link_is_built_on_the_configured_address_not_the_request_host(settings, register):
    settings.PUBLIC_BASE_URL = "https://aiflow.example.org"
    settings.ALLOWED_HOSTS = ["*"]
    assert register(ADA, HTTP_HOST="attacker.example").status_code == 201
    assert "attacker.example" not in mail.outbox[0].body
    assert "https://aiflow.example.org/auth/email/verify/" in mail.outbox[0].body


def test_opening_the_link_verifies_nothing_it_asks_for_the_password(register):
    # A mail scanner (or the address's owner, when someone else chose the password) follows
    # the link: that proves only that the mail arrived.
    register(ADA)
    page = Client().get(_link_path(mail.outbox[0]))
    html = page.content.decode()
    assert page.status_code == 200
    assert "Confirm your email address" in html
    assert 'name="password"' in html
    assert User.objects.get().email_verified is False


def test_confirming_on_the_links_page_with_the_accounts_password_verifies(register):
    register(ADA)
    response = _confirm(
        Client(enforce_csrf_checks=True), _link_path(mail.outbox[0]), {"password": STRONG_PASSWORD}
    )
    assert response.status_code == 200
    assert "Email verified" in response.content.decode()
    assert User.objects.get().email_verified is True


def test_a_wrong_password_on_the_links_page_verifies_nothing_and_counts_as_a_failed_sign_in(
    register, settings
):
    settings.ACCOUNTS_LOGIN_LOCKOUT_THRESHOLD = 2
    register(ADA)
    path = _link_path(mail.outbox[0])
    client = Client(enforce_csrf_checks=True)
    wrong = [_confirm(client, path, {"password": f"guess-{n}"}).status_code for n in range(2)]
    right = _confirm(client, path, {"password": STRONG_PASSWORD})
    assert (wrong, right.status_code) == ([400, 400], 429)
    assert "Too many failed sign-in attempts" in right.content.decode()
    assert User.objects.get().email_verified is False


def test_a_browser_signed_in_as_the_account_confirms_without_the_password(register):
    register(ADA)
    user = User.objects.get()
    browser = signed_in_client(user, password=STRONG_PASSWORD)
    path = _link_path(mail.outbox[0])
    assert 'name="password"' not in browser.get(path).content.decode()
    response = _confirm(browser, path, {})
    assert response.status_code == 200
    assert User.objects.get().email_verified is True


def test_a_browser_signed_in_as_another_account_must_give_the_password(register, other_user):
    register(ADA)
    browser = signed_in_client(other_user)
    response = _confirm(browser, _link_path(mail.outbox[0]), {})
    assert response.status_code == 400
    assert "Confirm with the account" in response.content.decode()
    assert User.objects.get(email=ADA).email_verified is False


def test_the_links_page_refuses_a_post_without_csrf(register):
    register(ADA)
    response = Client(enforce_csrf_checks=True).post(
        _link_path(mail.outbox[0]), {"password": STRONG_PASSWORD}
    )
    assert response.status_code == 403
    assert User.objects.get().email_verified is False


def test_the_api_endpoint_verifies_with_the_password_and_returns_the_user(register):
    register(ADA)
    response = _verify(_token(mail.outbox[0]))
    assert response.status_code == 200
    assert response.json()["email_verified"] is True
    assert User.objects.get().email_verified is True


def test_the_api_endpoint_without_the_password_verifies_nothing(register):
    register(ADA)
    response = APIClient().post(
        "/auth/email/verify", {"token": _token(mail.outbox[0])}, format="json"
    )
    assert (response.status_code, response.json()["code"]) == (400, "password_required")
    assert User.objects.get().email_verified is False


def test_the_api_endpoint_verifies_for_the_signed_in_account_without_the_password(register):
    register(ADA)
    user = User.objects.get()
    client = bearer(login(user, password=STRONG_PASSWORD)["access"])
    response = client.post("/auth/email/verify", {"token": _token(mail.outbox[0])}, format="json")
    assert response.status_code == 200
    assert User.objects.get().email_verified is True


def test_the_api_endpoint_with_a_wrong_password_verifies_nothing(register):
    register(ADA)
    response = _verify(_token(mail.outbox[0]), password="not-the-password")
    assert (response.status_code, response.json()["code"]) == (400, "invalid_password")
    assert User.objects.get().email_verified is False


def test_the_link_works_once(register):
    register(ADA)
    token = _token(mail.outbox[0])
    first, second = _verify(token), _verify(token)
    assert first.status_code == 200
    assert (second.status_code, second.json()["code"]) == (400, "verification_link_used")


def test_a_used_link_opened_again_in_the_browser_says_the_address_is_verified(register):
    register(ADA)
    path = _link_path(mail.outbox[0])
    _verify(_token(mail.outbox[0]))
    again = Client().get(path)
    assert again.status_code == 200
    assert "already used" in again.content.decode()


def test_an_expired_link_is_refused_and_leaves_the_address_unverified(
    monkeypatch, settings, register
):
    register(ADA)
    user = User.objects.get()
    issued = signing.TimestampSigner.timestamp

    def hours_ago(self):
        # Sign as if ACCOUNTS_EMAIL_VERIFICATION_HOURS and one minute had gone by.
        age = timedelta(hours=settings.ACCOUNTS_EMAIL_VERIFICATION_HOURS, minutes=1)
        return signing.b62_encode(int(signing.b62_decode(issued(self)) - age.total_seconds()))

    monkeypatch.setattr(signing.TimestampSigner, "timestamp", hours_ago)
    token = email_verification_token(user=user)
    monkeypatch.undo()
    response = _verify(token)
    assert (response.status_code, response.json()["code"]) == (400, "verification_link_expired")
    page = Client().get(f"/auth/email/verify/{token}")
    assert page.status_code == 400
    assert "expired" in page.content.decode()
    assert User.objects.get().email_verified is False


def test_a_tampered_link_is_refused(register):
    register(ADA)
    token = _token(mail.outbox[0])
    payload, rest = token.split(":", 1)
    forged = signing.dumps({"uid": User.objects.get().pk + 1, "email": "x@example.com"})
    for bad in (f"{payload}x:{rest}", forged, "garbage"):
        response = _verify(bad)
        assert (response.status_code, response.json()["code"]) == (
            400,
            "verification_link_invalid",
        )
    assert User.objects.get().email_verified is False


def test_a_link_for_an_address_the_account_no_longer_has_is_refused(user):
    email_verification_send(user=user)
    token = _token(mail.outbox[0])
    user.email = "new-address@example.com"
    user.save()
    response = _verify(token, password=DEFAULT_PASSWORD)
    assert (response.status_code, response.json()["code"]) == (400, "verification_link_invalid")
    user.refresh_from_db()
    assert user.email_verified is False


def test_changing_the_address_of_a_verified_account_makes_it_unverified(user):
    email_verification_send(user=user)
    assert _verify(_token(mail.outbox[0]), password=DEFAULT_PASSWORD).status_code == 200
    user.refresh_from_db()
    user.email = "elsewhere@example.com"
    user.save(update_fields=["email"])
    user.refresh_from_db()
    assert (user.email_canonical, user.email_verified) == ("elsewhere@example.com", False)


# --- Asking again ------------------------------------------------------------------------------


def test_a_signed_in_user_asks_for_the_link_again_and_it_works(user, tokens):
    response = bearer(tokens["access"]).post("/auth/email/verify/resend")
    assert response.status_code == 204
    assert [m.to for m in mail.outbox] == [[user.email]]
    assert _verify(_token(mail.outbox[0]), password=DEFAULT_PASSWORD).status_code == 200


def test_asking_again_is_rate_limited_per_user(user, tokens, settings):
    settings.ACCOUNTS_RATE_LIMITS = {**settings.ACCOUNTS_RATE_LIMITS, "verify_email": "2/hour"}
    client = bearer(tokens["access"])
    statuses = [client.post("/auth/email/verify/resend").status_code for _ in range(3)]
    assert statuses == [204, 204, 429]
    assert len(mail.outbox) == 2


def test_asking_again_once_verified_is_409(user, tokens):
    client = bearer(tokens["access"])
    client.post("/auth/email/verify/resend")
    _verify(_token(mail.outbox[0]), password=DEFAULT_PASSWORD)
    response = client.post("/auth/email/verify/resend")
    assert (response.status_code, response.json()["code"]) == (409, "email_already_verified")


def test_asking_again_needs_a_signed_in_user():
    assert APIClient().post("/auth/email/verify/resend").status_code == 401


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_with_the_mail_server_down_registration_still_succeeds_and_asking_again_is_503(
    register,
):
    smtp = {
        "EMAIL_BACKEND": "django.core.mail.backends.smtp.EmailBackend",
        "EMAIL_HOST": "127.0.0.1",
        "EMAIL_PORT": _closed_port(),
        "EMAIL_TIMEOUT": 5,
    }
    with override_settings(**smtp):
        assert register(ADA).status_code == 201
        user = User.objects.get()
        response = bearer(login(user, password=STRONG_PASSWORD)["access"]).post(
            "/auth/email/verify/resend"
        )
    assert (response.status_code, response.json()["code"]) == (503, "mail_unavailable")


# --- What an unverified account may do ----------------------------------------------------------


def test_an_unverified_account_signs_in_with_its_password(user):
    assert user.email_verified is False
    body = login(user, password=DEFAULT_PASSWORD)
    assert body["user"]["email_verified"] is False
    assert bearer(body["access"]).get("/auth/me").status_code == 200


def test_the_account_page_says_by_when_to_confirm_and_sends_the_link_again(user):
    browser = signed_in_client(user)
    html = browser.get("/account").content.decode()

    page = browser.get("/account").content.decode()
    response = browser.post("/account/email/resend", {"csrfmiddlewaretoken": csrf_token_of(page)})

    assert "is not confirmed yet" in html
    assert response.status_code == 302
    assert [m.to for m in mail.outbox] == [[user.email]]


def test_the_account_page_of_a_verified_account_asks_nothing(user):
    User.objects.filter(pk=user.pk).update(email_verified_at="2026-01-01T00:00Z")

    html = signed_in_client(user).get("/account").content.decode()

    assert "is not confirmed yet" not in html
