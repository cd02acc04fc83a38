"""MFA in a real browser: set it up on the Account page, sign out, sign in with a TOTP code,
then again with a backup code."""

import re

import pytest
from django_otp.plugins.otp_totp.models import TOTPDevice

from tests.accounts.conftest import totp_code
from tests.e2e.conftest import assert_accessible, screenshot_dir
from tests.factories import DEFAULT_PASSWORD

pytestmark = [pytest.mark.slow, pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def _password_step(page, web_url, user):
    page.goto(web_url + "/")
    page.get_by_label("Email").fill(user.email)
    page.get_by_label("Password", exact=True).fill(DEFAULT_PASSWORD)
    page.get_by_role("button", name="Sign in", exact=True).click()


def _sign_out(page):
    page.get_by_role("button", name="Sign out", exact=True).click()
    page.get_by_role("heading", name="Sign in").wait_for()


def test_mfa_setup_then_sign_in_with_a_totp_code_and_with_a_backup_code(web_url, page, user):
    _password_step(page, web_url, user)
    page.get_by_role("heading", name="Your projects").wait_for()

    page.get_by_role("link", name="Account").click()
    page.get_by_role("button", name="Set up two-factor").click()
    page.get_by_role("img", name="QR code of the authenticator set-up link").wait_for()
    device = TOTPDevice.objects.get(user=user, confirmed=False)
    page.get_by_label("Code", exact=True).fill(totp_code(device, offset_steps=-1))
    page.get_by_label("Password", exact=True).fill(DEFAULT_PASSWORD)
    page.get_by_role("button", name="Turn on two-factor").click()
    codes_list = page.get_by_role("list", name="Backup codes")
    codes_list.wait_for()
    codes = [text.strip() for text in codes_list.get_by_role("listitem").all_inner_texts()]
    assert len(codes) == 10
    assert_accessible(page)
    page.screenshot(path=str(screenshot_dir() / "account-backup-codes.png"), full_page=True)

    _sign_out(page)
    _password_step(page, web_url, user)
    page.get_by_role("heading", name="Two-factor check").wait_for()
    assert_accessible(page)
    page.get_by_label("Code", exact=True).fill(totp_code(device))
    page.get_by_role("button", name="Verify").click()
    page.get_by_role("heading", name="Your projects").wait_for()

    _sign_out(page)
    _password_step(page, web_url, user)
    page.get_by_role("heading", name="Two-factor check").wait_for()
    page.get_by_label("Code", exact=True).fill(codes[0])
    page.get_by_role("button", name="Verify").click()
    page.get_by_role("heading", name="Your projects").wait_for()
    page.get_by_role("link", name="Account").click()
    assert page.get_by_role("button", name=re.compile(r"^Sign out this device")).count() >= 1
