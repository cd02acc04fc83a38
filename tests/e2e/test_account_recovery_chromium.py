"""Confirming an address and resetting a password in Chromium, by role and name.

The mailed verification link opens a form (opening it verifies nothing); the account's
password confirms it. "Forgot your password?" asks for a link; the link (Django's token, made
here as the mail would carry it) leads to a new password, after which the browser signs in
with it and the device signed in before is out.
"""

from typing import Any

import pytest
import requests
from django.contrib.auth.tokens import default_token_generator
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode

from accounts.models import User
from accounts.services import email_verification_token
from tests.e2e.conftest import assert_accessible, screenshot_dir
from tests.factories import DEFAULT_PASSWORD, UserFactory

pytestmark = [pytest.mark.slow, pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

NEW_PASSWORD = "Hopper-Compiler-1952"  # noqa: S105


def test_a_person_confirms_their_address_with_the_password(web_url: str, page: Any) -> None:
    user: Any = UserFactory()

    page.goto(f"{web_url}/auth/email/verify/{email_verification_token(user=user)}")
    page.get_by_role("heading", name="Confirm your email address").wait_for()
    assert_accessible(page)
    page.screenshot(path=str(screenshot_dir() / "email-confirm.png"))
    opened_only = User.objects.get(pk=user.pk).email_verified
    page.get_by_label("Password of the account").fill(DEFAULT_PASSWORD)
    page.get_by_role("button", name="Confirm my address").click()
    page.get_by_role("heading", name="Email verified").wait_for()

    assert (opened_only, User.objects.get(pk=user.pk).email_verified) == (False, True)


def test_a_person_resets_their_password_and_every_device_is_signed_out(
    web_url: str, page: Any
) -> None:
    user: Any = UserFactory()
    device = requests.post(
        f"{web_url}/auth/login",
        json={"email": user.email, "password": DEFAULT_PASSWORD},
        timeout=30,
    ).json()

    page.goto(web_url + "/")
    page.get_by_role("link", name="Forgot your password?").click()
    page.get_by_label("Email").fill(user.email)
    page.get_by_role("button", name="Send the link").click()
    page.get_by_role("status").filter(has_text="is on its way").wait_for()
    assert_accessible(page)
    user.refresh_from_db()  # the sign-in above moved last_login, part of the token
    uid = urlsafe_base64_encode(force_bytes(user.pk))
    page.goto(f"{web_url}/password/reset/{uid}/{default_token_generator.make_token(user)}")
    page.get_by_role("heading", name="Choose a new password").wait_for()
    assert_accessible(page)
    page.screenshot(path=str(screenshot_dir() / "password-reset.png"))
    page.get_by_label("New password", exact=True).fill(NEW_PASSWORD)
    page.get_by_label("New password again").fill(NEW_PASSWORD)
    page.get_by_role("button", name="Set the new password").click()
    page.get_by_text("every device was signed out").wait_for()
    page.get_by_label("Password").fill(NEW_PASSWORD)
    page.get_by_role("button", name="Sign in", exact=True).click()
    page.get_by_role("heading", name="Your projects").wait_for()

    old_device = requests.get(
        f"{web_url}/auth/me", headers={"Authorization": f"Bearer {device['access']}"}, timeout=30
    )
    assert old_device.status_code == 401
