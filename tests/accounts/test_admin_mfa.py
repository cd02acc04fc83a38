"""Staff reach the admin and GET /admin/providers only from a session that passed MFA."""

import pytest
from django.test import Client
from django_otp.plugins.otp_totp.models import TOTPDevice
from rest_framework.test import APIClient

from tests.accounts.conftest import (
    bearer,
    enable_mfa,
    login,
    mfa_tokens,
    sign_in_past_mfa,
    totp_code,
)
from tests.conftest import access_token_for
from tests.factories import DEFAULT_PASSWORD, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff():
    return UserFactory.create(is_staff=True, is_superuser=True)


@pytest.fixture
def staff_device(staff):
    device, _ = enable_mfa(staff)
    return device


# --- The Django admin ------------------------------------------------------------------------


def test_staff_without_mfa_are_refused_the_admin_and_told_to_set_it_up(staff):
    client = Client()
    client.force_login(staff)
    response = client.get("/admin/", follow=True)
    assert response.status_code == 403
    assert response.context["code"] == "mfa_setup_required"
    assert "has not set up" in response.content.decode()
    assert "/auth/mfa/totp/setup" in response.content.decode()


def test_staff_with_mfa_and_only_a_password_session_are_refused_the_admin(staff, staff_device):
    client = Client()
    client.force_login(staff)
    response = client.get("/admin/")
    assert response.status_code == 302
    assert "/admin/login/" in response["Location"]
    page = client.get(response["Location"])
    assert page.status_code == 403
    assert page.context["code"] == "mfa_step_required"


def test_the_admins_password_only_login_form_is_not_offered(staff):
    response = Client().get("/admin/login/")
    assert (response.status_code, response["Location"]) == (302, "/")


def test_a_signed_in_non_staff_user_is_sent_to_the_dashboard(user):
    client = Client()
    client.force_login(user)
    page = client.get("/admin/login/")
    assert (page.status_code, page["Location"]) == (302, "/")


def test_staff_who_passed_the_mfa_step_on_the_dashboard_open_the_admin(staff, staff_device):
    client = Client()
    client.post("/", {"email": staff.email, "password": DEFAULT_PASSWORD})
    client.post("/", {"code": totp_code(staff_device)})
    assert client.get("/admin/").status_code == 200


def test_staff_who_passed_the_mfa_step_with_a_backup_code_open_the_admin(staff):
    _, codes = enable_mfa(staff)
    client = Client()
    client.post("/", {"email": staff.email, "password": DEFAULT_PASSWORD})
    client.post("/", {"code": codes[0]})
    assert client.get("/admin/").status_code == 200


# --- GET /admin/providers --------------------------------------------------------------------


def test_staff_without_mfa_get_403_from_the_providers_endpoint_saying_to_set_it_up(staff):
    response = bearer(access_token_for(staff)).get("/admin/providers")
    assert response.status_code == 403
    assert response.json()["code"] == "mfa_setup_required"
    assert "/auth/mfa/totp/setup" in response.json()["detail"]


def test_a_staff_token_from_a_session_that_skipped_mfa_gets_403(staff, staff_device):
    # A session opened without the second step (here: directly through the service).
    response = bearer(access_token_for(staff)).get("/admin/providers")
    assert response.status_code == 403
    assert response.json()["code"] == "mfa_step_required"


def test_a_staff_token_from_a_sign_in_through_mfa_gets_the_providers(staff, staff_device):
    tokens = mfa_tokens(staff, staff_device)
    response = bearer(tokens["access"]).get("/admin/providers")
    assert response.status_code == 200
    assert "providers" in response.json()


def test_the_mfa_mark_survives_a_token_refresh(staff, staff_device):
    tokens = mfa_tokens(staff, staff_device)
    rotated = APIClient().post("/auth/refresh", {"refresh": tokens["refresh"]}, format="json")
    assert bearer(rotated.json()["access"]).get("/admin/providers").status_code == 200


def test_a_staff_dashboard_session_past_mfa_gets_the_providers(staff, staff_device):
    client = sign_in_past_mfa(Client(), staff, staff_device)
    assert client.get("/admin/providers").status_code == 200


def test_a_staff_member_who_turns_mfa_on_in_a_session_may_use_it_at_once(staff):
    client = bearer(login(staff)["access"])
    assert client.get("/admin/providers").json()["code"] == "mfa_setup_required"
    client.post("/auth/mfa/totp/setup")
    device = TOTPDevice.objects.get(user=staff)
    code = totp_code(device, offset_steps=-1)
    confirmed = client.post(
        "/auth/mfa/totp/confirm", {"code": code, "password": DEFAULT_PASSWORD}, format="json"
    )
    assert confirmed.status_code == 200
    assert client.get("/admin/providers").status_code == 200


def test_non_staff_get_403_from_the_providers_endpoint(user):
    response = bearer(access_token_for(user)).get("/admin/providers")
    assert response.status_code == 403
    assert response.json()["code"] == "permission_denied"


def test_without_credentials_the_providers_endpoint_is_401():
    assert APIClient().get("/admin/providers").status_code == 401
