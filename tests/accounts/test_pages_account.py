"""The Account page: sign-up, MFA set-up and backup codes, devices signed in, password."""

import re

import pytest
from django.test import Client
from django_otp.plugins.otp_totp.models import TOTPDevice

from accounts.models import User, UserSession
from accounts.services import session_start
from tests.accounts.conftest import totp_code
from tests.factories import DEFAULT_PASSWORD
from tests.page_helpers import csrf_token_of, page_post, signed_in_client

pytestmark = pytest.mark.django_db


def test_sign_up_refuses_the_seed_password_with_the_validators_reason():
    client = Client(enforce_csrf_checks=True)
    response = page_post(
        client,
        "/signup",
        {"username": "newbie", "email": "newbie@example.com", "password": "password123"},
        form_page="/signup",
    )
    html = response.content.decode()
    assert response.status_code == 400
    assert "This password is too common." in html
    assert re.search(r'id="password-error">[^<]*too common', html)
    assert not User.objects.filter(email="newbie@example.com").exists()


def test_sign_up_creates_the_account_and_sends_the_browser_to_sign_in():
    client = Client(enforce_csrf_checks=True)
    response = page_post(
        client,
        "/signup",
        {"username": "newbie", "email": "Newbie@Example.com", "password": DEFAULT_PASSWORD},
        form_page="/signup",
    )
    assert response.status_code == 302
    assert response["Location"] == "/?email=newbie@example.com"
    assert User.objects.get(email="newbie@example.com").check_password(DEFAULT_PASSWORD)


def test_sign_up_with_a_taken_email_says_so_next_to_the_email_field(user):
    client = Client(enforce_csrf_checks=True)
    response = page_post(
        client,
        "/signup",
        {"username": "other", "email": user.email, "password": DEFAULT_PASSWORD},
        form_page="/signup",
    )
    assert response.status_code == 400
    assert re.search(
        r'id="email-error">A user with that email already exists', response.content.decode()
    )


def test_signing_in_opens_a_device_session_listed_as_this_browser(user):
    client = signed_in_client(user)
    html = client.get("/account").content.decode()
    session = UserSession.objects.get(user=user, revoked_at__isnull=True)
    assert "this browser" in html
    assert f"/account/sessions/{session.pk}/sign-out" in html


def test_signing_this_device_out_elsewhere_ends_the_browser_session(user):
    client = signed_in_client(user)
    session = UserSession.objects.get(user=user, revoked_at__isnull=True)
    api_session, _ = session_start(user=user, ip="127.0.0.2", user_agent="curl/8")
    from accounts.services import session_revoke

    session_revoke(session=session, reason="signed_out_by_user")
    response = client.get("/account")
    assert response.status_code == 302
    assert response["Location"] == "/"
    assert "Sign in" in client.get("/").content.decode()
    assert UserSession.objects.get(pk=api_session.pk).revoked_at is None


def test_sign_out_this_device_revokes_another_session_and_keeps_this_browser(user):
    client = signed_in_client(user)
    other, _ = session_start(user=user, ip="127.0.0.2", user_agent="curl/8")
    response = page_post(client, f"/account/sessions/{other.pk}/sign-out", {}, form_page="/account")
    assert response.status_code == 302
    assert UserSession.objects.get(pk=other.pk).revoked_at is not None
    assert client.get("/account").status_code == 200


def test_another_users_session_cannot_be_signed_out(user, other_user):
    client = signed_in_client(user)
    theirs, _ = session_start(user=other_user, ip="127.0.0.2", user_agent="curl/8")
    response = page_post(
        client, f"/account/sessions/{theirs.pk}/sign-out", {}, form_page="/account"
    )
    assert response.status_code == 404
    assert UserSession.objects.get(pk=theirs.pk).revoked_at is None


def test_sign_out_revokes_the_browsers_device_session(user):
    client = signed_in_client(user)
    session = UserSession.objects.get(user=user, revoked_at__isnull=True)
    page_post(client, "/signout", {}, form_page="/account")
    assert UserSession.objects.get(pk=session.pk).revoked_reason == "logout"
    assert client.get("/account").status_code == 302


def _mfa_confirm(client, user, *, password=DEFAULT_PASSWORD):
    page_post(client, "/account/mfa/setup", {}, form_page="/account")
    device = TOTPDevice.objects.get(user=user, confirmed=False)
    return page_post(
        client,
        "/account/mfa/confirm",
        {"code": totp_code(device), "password": password},
        form_page="/account",
    )


def test_mfa_setup_shows_the_qr_code_and_secret(user):
    client = signed_in_client(user)
    response = page_post(client, "/account/mfa/setup", {}, form_page="/account")
    html = response.content.decode()
    assert "<svg" in html
    assert 'aria-label="QR code of the authenticator set-up link"' in html
    assert 'id="totp-secret"' in html


def test_mfa_confirm_needs_the_password(user):
    client = signed_in_client(user)
    response = _mfa_confirm(client, user, password="not-it-at-all")
    assert response.status_code == 400
    assert "The password is wrong." in response.content.decode()
    assert not TOTPDevice.objects.filter(user=user, confirmed=True).exists()


def test_mfa_confirm_shows_ten_backup_codes_once_and_keeps_the_browser_signed_in(user):
    client = signed_in_client(user)
    response = _mfa_confirm(client, user)
    html = response.content.decode()
    codes = re.findall(r"<li><code>([^<]+)</code></li>", html)
    assert response.status_code == 200
    assert len(codes) == 10
    assert TOTPDevice.objects.get(user=user).confirmed
    later = client.get("/account").content.decode()
    assert "Regenerate backup codes" in later
    assert not any(code in later for code in codes)


def test_regenerating_backup_codes_kills_the_old_ones(user):
    client = signed_in_client(user)
    old = re.findall(r"<li><code>([^<]+)</code></li>", _mfa_confirm(client, user).content.decode())
    response = page_post(
        client, "/account/mfa/backup-codes", {"code": old[0]}, form_page="/account"
    )
    new = re.findall(r"<li><code>([^<]+)</code></li>", response.content.decode())
    assert len(new) == 10
    assert set(new).isdisjoint(old)
    from accounts.services import second_factor_verify

    assert not second_factor_verify(user=user, code=old[1])
    assert second_factor_verify(user=user, code=new[1])


def test_changing_the_password_signs_out_other_devices_but_not_this_browser(user):
    client = signed_in_client(user)
    other, _ = session_start(user=user, ip="127.0.0.2", user_agent="curl/8")
    response = page_post(
        client,
        "/account/password",
        {"current_password": DEFAULT_PASSWORD, "new_password": "Another-Long-Secret-42"},
        form_page="/account",
    )
    assert response.status_code == 302
    assert UserSession.objects.get(pk=other.pk).revoked_at is not None
    assert client.get("/account").status_code == 200
    user.refresh_from_db()
    assert user.check_password("Another-Long-Secret-42")


def test_a_weak_new_password_is_refused_next_to_its_field(user):
    client = signed_in_client(user)
    response = page_post(
        client,
        "/account/password",
        {"current_password": DEFAULT_PASSWORD, "new_password": "12345678"},
        form_page="/account",
    )
    assert response.status_code == 400
    assert re.search(r'id="new_password-error">[^<]*entirely numeric', response.content.decode())


def test_account_forms_refuse_a_post_without_csrf(user):
    client = signed_in_client(user)
    response = client.post("/account/mfa/setup", {})
    assert response.status_code == 403
    assert csrf_token_of(client.get("/account").content.decode())


def test_turning_mfa_off_signs_other_devices_out_and_keeps_this_browser_on_one_session(user):
    from tests.accounts.conftest import enable_mfa, sign_in_past_mfa

    device, _ = enable_mfa(user)
    browser = sign_in_past_mfa(Client(enforce_csrf_checks=True), user, device)
    other, _ = session_start(user=user, ip="127.0.0.2", user_agent="curl/8")

    response = page_post(
        browser, "/account/mfa/disable", {"code": totp_code(device)}, form_page="/account"
    )

    live = UserSession.objects.filter(user=user, revoked_at__isnull=True)
    assert response.status_code == 302
    assert browser.get("/account").status_code == 200
    assert [str(s.pk) for s in live] == [browser.session["accounts_page_sid"]]
    assert UserSession.objects.get(pk=other.pk).revoked_at is not None
