"""The admin asks staff who have MFA on for the MFA step, like the dashboard does."""

import pytest
from django.test import Client
from django_otp.plugins.otp_totp.models import TOTPDevice

from accounts.services import mfa_totp_confirm, mfa_totp_setup
from tests.accounts.conftest import totp_code
from tests.factories import DEFAULT_PASSWORD, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff():
    return UserFactory.create(is_staff=True, is_superuser=True)


@pytest.fixture
def staff_device(staff):
    mfa_totp_setup(user=staff)
    device = TOTPDevice.objects.get(user=staff)
    mfa_totp_confirm(user=staff, code=totp_code(device, offset_steps=-1))
    return device


def test_staff_without_mfa_open_the_admin(staff):
    client = Client()
    client.force_login(staff)
    assert client.get("/admin/").status_code == 200


def test_staff_with_mfa_and_only_a_password_session_are_sent_away(staff, staff_device):
    client = Client()
    client.force_login(staff)
    response = client.get("/admin/")
    assert response.status_code == 302
    assert "/admin/login/" in response["Location"]


def test_the_admins_password_only_login_form_is_not_offered(staff):
    response = Client().get("/admin/login/")
    assert (response.status_code, response["Location"]) == (302, "/")


def test_staff_who_passed_the_mfa_step_on_the_dashboard_open_the_admin(staff, staff_device):
    client = Client()
    client.post("/", {"email": staff.email, "password": DEFAULT_PASSWORD})
    client.post("/", {"code": totp_code(staff_device)})
    assert client.get("/admin/").status_code == 200
