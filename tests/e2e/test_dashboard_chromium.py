"""Signing in on the dashboard in a real browser (Chromium, Playwright), by role and name.

A user with MFA signs in with email and password, passes the TOTP step, and sees their
projects and nobody else's; a wrong password keeps the browser on the sign-in form with the
reason shown.
"""

import re

import pytest
from django_otp.plugins.otp_totp.models import TOTPDevice

from accounts.services import mfa_totp_confirm, mfa_totp_setup
from tests.accounts.conftest import totp_code
from tests.e2e.conftest import screenshot_dir
from tests.factories import DEFAULT_PASSWORD, ProjectFactory

pytestmark = [pytest.mark.slow, pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def test_a_user_with_mfa_signs_in_and_sees_only_their_projects(web_url, page, user, other_user):
    mfa_totp_setup(user=user)
    device = TOTPDevice.objects.get(user=user)
    mfa_totp_confirm(user=user, code=totp_code(device, offset_steps=-1), password=DEFAULT_PASSWORD)
    ProjectFactory(owner=user, name="Mine in the browser")
    ProjectFactory(owner=other_user, name="Somebody else's")

    page.goto(web_url + "/")
    page.get_by_label("Email").fill(user.email)
    page.get_by_label("Password").fill(DEFAULT_PASSWORD)
    page.get_by_role("button", name="Sign in", exact=True).click()
    page.get_by_role("heading", name="Two-factor check").wait_for()
    assert page.get_by_role("link", name="Mine in the browser").count() == 0

    page.get_by_label("Code").fill(totp_code(device))
    page.get_by_role("button", name="Verify").click()
    page.get_by_role("link", name="Mine in the browser").wait_for()
    page.screenshot(path=str(screenshot_dir() / "projects.png"))
    assert page.get_by_text("Somebody else's").count() == 0


def test_a_wrong_password_keeps_the_browser_on_the_sign_in_form(web_url, page, user, watch):
    watch.allow("the server responded with a status of 400")
    page.goto(web_url + "/")
    page.get_by_label("Email").fill(user.email)
    page.get_by_label("Password").fill("not-the-password")
    page.get_by_role("button", name="Sign in", exact=True).click()

    page.get_by_role("alert").filter(has_text="Invalid email or password.").wait_for()
    assert page.get_by_role("heading", name="Sign in").is_visible()
    assert page.get_by_role("heading", name="Your projects").count() == 0
    assert page.get_by_role("heading", name="Two-factor check").count() == 0
    assert re.fullmatch(re.escape(web_url) + r"/", page.url)
