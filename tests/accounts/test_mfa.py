"""TOTP MFA: enrolment, login with the second step, backup codes, replay and disable."""

from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone
from django_otp.plugins.otp_totp.models import TOTPDevice
from rest_framework.test import APIClient

from accounts.models import BackupCode, UserSession
from tests.accounts.conftest import UA_PHONE, bearer, login, refresh, totp_code
from tests.conftest import access_token_for
from tests.factories import DEFAULT_PASSWORD

pytestmark = pytest.mark.django_db


def _password_step(user) -> dict:
    response = APIClient().post(
        "/auth/login", {"email": user.email, "password": "Correct-Horse-Battery-9"}, format="json"
    )
    assert response.status_code == 200
    return response.json()


def _verify(mfa_token: str, code: str):
    return APIClient().post(
        "/auth/mfa/verify", {"mfa_token": mfa_token, "code": code}, format="json"
    )


@pytest.fixture
def enrolled(user, tokens) -> dict:
    """MFA on for ``user``: its device, backup codes and the client that enrolled."""
    client = bearer(tokens["access"])
    client.post("/auth/mfa/totp/setup")
    device = TOTPDevice.objects.get(user=user)
    # The confirming code uses the previous time step, so the test's own "current" code
    # is still unused afterwards.
    confirm = client.post(
        "/auth/mfa/totp/confirm",
        {"code": totp_code(device, offset_steps=-1), "password": DEFAULT_PASSWORD},
        format="json",
    )
    assert confirm.status_code == 200
    device.refresh_from_db()
    return {"device": device, "backup_codes": confirm.json()["backup_codes"], "client": client}


def test_setup_returns_the_secret_an_otpauth_url_and_an_svg_qr_code(tokens):
    response = bearer(tokens["access"]).post("/auth/mfa/totp/setup")
    assert response.status_code == 200
    body = response.json()
    assert body["otpauth_url"].startswith("otpauth://totp/")
    assert f"secret={body['secret']}" in body["otpauth_url"]
    assert body["qr_svg"].lstrip().startswith("<svg") or "<svg" in body["qr_svg"][:200]


def test_setup_alone_does_not_turn_mfa_on(user, tokens):
    bearer(tokens["access"]).post("/auth/mfa/totp/setup")
    assert "access" in _password_step(user)


def test_confirm_with_a_wrong_code_is_400_and_mfa_stays_off(user, tokens):
    client = bearer(tokens["access"])
    client.post("/auth/mfa/totp/setup")
    response = client.post(
        "/auth/mfa/totp/confirm", {"code": "000000", "password": DEFAULT_PASSWORD}, format="json"
    )
    assert response.status_code == 400
    assert client.get("/auth/me").json()["mfa_enabled"] is False


def test_confirm_turns_mfa_on_and_returns_ten_distinct_backup_codes(enrolled):
    codes = enrolled["backup_codes"]
    assert len(codes) == 10
    assert len(set(codes)) == 10
    assert enrolled["client"].get("/auth/me").json()["mfa_enabled"] is True


def test_the_database_holds_no_backup_code_in_plain_text(enrolled):
    from django.db import connection

    stored = list(BackupCode.objects.values_list("digest", flat=True))
    assert len(stored) == 10
    with connection.cursor() as cursor:
        cursor.execute("SELECT * FROM accounts_backupcode")
        dump = repr(cursor.fetchall())
    for code in enrolled["backup_codes"]:
        assert code not in dump
        assert code.replace("-", "") not in dump


def test_login_with_mfa_on_returns_an_mfa_token_instead_of_tokens(user, enrolled):
    body = _password_step(user)
    assert body["mfa_required"] is True
    assert set(body) == {"mfa_required", "mfa_token"}


def test_the_mfa_token_is_useless_as_an_access_token(user, enrolled):
    body = _password_step(user)
    assert bearer(body["mfa_token"]).get("/auth/me").status_code == 401


def test_mfa_verify_with_a_totp_code_returns_tokens(user, enrolled):
    body = _password_step(user)
    response = _verify(body["mfa_token"], totp_code(enrolled["device"]))
    assert response.status_code == 200
    assert bearer(response.json()["access"]).get("/auth/me").status_code == 200


def test_the_same_totp_code_twice_is_refused_the_second_time(user, enrolled):
    code = totp_code(enrolled["device"])
    first = _verify(_password_step(user)["mfa_token"], code)
    second = _verify(_password_step(user)["mfa_token"], code)
    assert first.status_code == 200
    assert second.status_code == 401
    assert second.json()["code"] == "invalid_code"


def test_a_totp_code_already_used_to_confirm_is_refused_at_login(user, enrolled):
    response = _verify(
        _password_step(user)["mfa_token"], totp_code(enrolled["device"], offset_steps=-1)
    )
    assert response.status_code == 401


def test_a_backup_code_works_once(user, enrolled):
    code = enrolled["backup_codes"][0]
    first = _verify(_password_step(user)["mfa_token"], code)
    second = _verify(_password_step(user)["mfa_token"], code)
    assert first.status_code == 200
    assert second.status_code == 401


def test_a_backup_code_is_accepted_in_upper_case_without_its_dash(user, enrolled):
    code = enrolled["backup_codes"][1].replace("-", "").upper()
    assert _verify(_password_step(user)["mfa_token"], code).status_code == 200


def test_an_mfa_token_works_only_once(user, enrolled):
    mfa_token = _password_step(user)["mfa_token"]
    assert _verify(mfa_token, enrolled["backup_codes"][0]).status_code == 200
    assert _verify(mfa_token, enrolled["backup_codes"][1]).status_code == 401


def test_an_mfa_token_dies_after_too_many_wrong_codes(user, enrolled, settings):
    settings.ACCOUNTS_MFA_TOKEN_MAX_ATTEMPTS = 3
    mfa_token = _password_step(user)["mfa_token"]
    for _ in range(3):
        _verify(mfa_token, "zzzzz-zzzzz")
    response = _verify(mfa_token, enrolled["backup_codes"][0])
    assert response.status_code == 401
    assert response.json()["code"] == "mfa_attempts_exceeded"


def test_mfa_verify_is_throttled_per_ip(user, enrolled, settings):
    settings.ACCOUNTS_RATE_LIMITS = {**settings.ACCOUNTS_RATE_LIMITS, "mfa": "3/minute"}
    mfa_token = _password_step(user)["mfa_token"]
    for _ in range(3):
        _verify(mfa_token, "zzzzz-zzzzz")
    response = _verify(mfa_token, enrolled["backup_codes"][0])
    assert response.status_code == 429
    assert int(response["Retry-After"]) >= 1


def test_regenerating_backup_codes_kills_the_old_ones(user, enrolled):
    response = enrolled["client"].post(
        "/auth/mfa/backup-codes", {"code": enrolled["backup_codes"][0]}, format="json"
    )
    assert response.status_code == 200
    fresh = response.json()["backup_codes"]
    assert len(fresh) == 10
    assert (
        _verify(_password_step(user)["mfa_token"], enrolled["backup_codes"][1]).status_code == 401
    )
    assert _verify(_password_step(user)["mfa_token"], fresh[0]).status_code == 200


def test_regenerating_backup_codes_needs_a_valid_code(enrolled):
    response = enrolled["client"].post(
        "/auth/mfa/backup-codes", {"code": "zzzzz-zzzzz"}, format="json"
    )
    assert response.status_code == 400


def test_disabling_mfa_revokes_every_session(user, enrolled):
    other_device = _verify(_password_step(user)["mfa_token"], enrolled["backup_codes"][0]).json()
    response = enrolled["client"].post(
        "/auth/mfa/disable", {"code": enrolled["backup_codes"][1]}, format="json"
    )
    assert response.status_code == 204
    assert enrolled["client"].get("/auth/me").status_code == 401
    assert bearer(other_device["access"]).get("/auth/me").status_code == 401
    assert refresh(other_device["refresh"]).status_code == 401


def test_after_disabling_mfa_login_returns_tokens_directly(user, enrolled):
    enrolled["client"].post(
        "/auth/mfa/disable", {"code": enrolled["backup_codes"][1]}, format="json"
    )
    assert "access" in login(user)


def test_disabling_mfa_needs_a_valid_code(enrolled):
    response = enrolled["client"].post("/auth/mfa/disable", {"code": "000000"}, format="json")
    assert response.status_code == 400
    assert enrolled["client"].get("/auth/me").json()["mfa_enabled"] is True


def test_setup_again_while_mfa_is_on_is_409(enrolled):
    assert enrolled["client"].post("/auth/mfa/totp/setup").status_code == 409


def test_wrong_mfa_codes_count_toward_the_account_lockout(user, enrolled, settings):
    settings.ACCOUNTS_LOGIN_LOCKOUT_THRESHOLD = 2
    _verify(_password_step(user)["mfa_token"], "zzzzz-zzzzz")
    _verify(_password_step(user)["mfa_token"], "zzzzz-zzzzz")
    response = APIClient().post(
        "/auth/login", {"email": user.email, "password": "Correct-Horse-Battery-9"}, format="json"
    )
    assert response.status_code == 429


# --- Turning MFA on: the password again, and every other session ends ------------------------


def _confirm(client, user, **body):
    device = TOTPDevice.objects.get(user=user)
    return client.post(
        "/auth/mfa/totp/confirm",
        {"code": totp_code(device, offset_steps=-1), **body},
        format="json",
    )


def test_confirm_without_the_password_is_400_and_mfa_stays_off(user, tokens):
    client = bearer(tokens["access"])
    client.post("/auth/mfa/totp/setup")
    response = _confirm(client, user)
    assert (response.status_code, response.json()["code"]) == (400, "invalid_password")
    assert client.get("/auth/me").json()["mfa_enabled"] is False


def test_confirm_with_a_wrong_password_is_400_and_mfa_stays_off(user, tokens):
    client = bearer(tokens["access"])
    client.post("/auth/mfa/totp/setup")
    response = _confirm(client, user, password="not-the-password-1")
    assert (response.status_code, response.json()["code"]) == (400, "invalid_password")
    assert client.get("/auth/me").json()["mfa_enabled"] is False


def test_wrong_passwords_at_confirm_count_toward_the_account_lockout(user, tokens, settings):
    settings.ACCOUNTS_LOGIN_LOCKOUT_THRESHOLD = 2
    client = bearer(tokens["access"])
    client.post("/auth/mfa/totp/setup")
    _confirm(client, user, password="guess-number-one")
    _confirm(client, user, password="guess-number-two")
    right = _confirm(client, user, password=DEFAULT_PASSWORD)
    assert (right.status_code, right.json()["code"]) == (429, "login_locked")
    assert client.get("/auth/me").json()["mfa_enabled"] is False


def test_confirm_revokes_the_other_device_sessions_and_keeps_this_one(user, tokens):
    other = login(user, user_agent=UA_PHONE)
    client = bearer(tokens["access"])
    client.post("/auth/mfa/totp/setup")
    assert _confirm(client, user, password=DEFAULT_PASSWORD).status_code == 200
    assert bearer(other["access"]).get("/auth/me").status_code == 401
    assert refresh(other["refresh"]).status_code == 401
    assert client.get("/auth/me").status_code == 200
    assert refresh(tokens["refresh"]).status_code == 200
    revoked = UserSession.objects.get(revoked_at__isnull=False)
    assert revoked.revoked_reason == "mfa_enabled"


def test_confirm_ends_the_users_dashboard_sessions(user, tokens):
    dashboard = Client()
    dashboard.force_login(user)
    assert dashboard.get("/auth/me").status_code == 200
    client = bearer(tokens["access"])
    client.post("/auth/mfa/totp/setup")
    _confirm(client, user, password=DEFAULT_PASSWORD)
    dashboard.get("/")
    # Signed out, not merely short of the MFA step: Django dropped the session's user.
    assert "_auth_user_id" not in dashboard.session


def test_confirm_from_the_dashboard_keeps_that_session_past_the_mfa_step(user, tokens):
    other = login(user, user_agent=UA_PHONE)
    dashboard = Client()
    dashboard.force_login(user)
    dashboard.post("/auth/mfa/totp/setup")
    response = _confirm(dashboard, user, password=DEFAULT_PASSWORD)
    assert response.status_code == 200
    # Still signed in, and past the MFA step: the API accepts the cookie of an MFA user.
    assert dashboard.get("/auth/me").json()["mfa_enabled"] is True
    assert bearer(other["access"]).get("/auth/me").status_code == 401


def test_confirm_marks_this_session_as_past_the_mfa_step(user, tokens):
    client = bearer(tokens["access"])
    client.post("/auth/mfa/totp/setup")
    _confirm(client, user, password=DEFAULT_PASSWORD)
    assert UserSession.objects.get(revoked_at__isnull=True).mfa_verified_at is not None


def test_an_account_without_a_password_confirms_soon_after_signing_in(user):
    user.set_unusable_password()
    user.save()
    client = bearer(access_token_for(user))
    client.post("/auth/mfa/totp/setup")
    assert _confirm(client, user).status_code == 200


def test_an_account_without_a_password_cannot_confirm_from_an_old_session(user, settings):
    user.set_unusable_password()
    user.save()
    client = bearer(access_token_for(user))
    UserSession.objects.update(
        created_at=timezone.now() - timedelta(minutes=settings.ACCOUNTS_REAUTH_MINUTES + 1)
    )
    client.post("/auth/mfa/totp/setup")
    response = _confirm(client, user, password="anything-at-all")
    assert (response.status_code, response.json()["code"]) == (400, "reauthentication_required")
    assert client.get("/auth/me").json()["mfa_enabled"] is False
