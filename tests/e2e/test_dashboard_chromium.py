"""The dashboard in a real browser: headless Chromium (Debian's) driven by Playwright.

A user with MFA signs in with email and password, passes the TOTP step, and sees their
projects and nobody else's, against daphne serving this test run's database.
"""

import os
import shutil
from collections.abc import Iterator
from typing import Any

import pytest
from django_otp.plugins.otp_totp.models import TOTPDevice

from accounts.services import mfa_totp_confirm, mfa_totp_setup
from tests.accounts.conftest import totp_code
from tests.factories import DEFAULT_PASSWORD, ProjectFactory
from tests.net import web_server

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# The flags this machine needs: no sandbox as root, and no calls to the closed internet.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

pytestmark = [pytest.mark.slow, pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def web_url(transactional_db: Any) -> Iterator[str]:
    """daphne serving config.asgi on a free port, on this test run's database."""
    with web_server() as (url, _):
        yield url


@pytest.fixture
def page(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    # Playwright's sync API keeps an event loop in this thread; the ORM calls the test makes
    # meanwhile are plain blocking calls (Django documents this switch for Playwright).
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

    assert os.path.exists(CHROMIUM), "Chromium is missing: apt-get install chromium"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield browser.new_page()
        finally:
            browser.close()


def test_a_user_with_mfa_signs_in_and_sees_only_their_projects(
    web_url, page, user, other_user, tmp_path
):
    mfa_totp_setup(user=user)
    device = TOTPDevice.objects.get(user=user)
    mfa_totp_confirm(user=user, code=totp_code(device, offset_steps=-1), password=DEFAULT_PASSWORD)
    ProjectFactory(owner=user, name="Mine in the browser")
    ProjectFactory(owner=other_user, name="Somebody else's")

    page.goto(web_url + "/")
    page.fill("#email", user.email)
    page.fill("#password", DEFAULT_PASSWORD)
    page.click("button:has-text('Sign in')")
    page.wait_for_selector("#code")
    assert "Mine in the browser" not in page.content()

    page.fill("#code", totp_code(device))
    page.click("button:has-text('Verify')")
    page.wait_for_selector("text=Mine in the browser")
    page.screenshot(path=os.environ.get("E2E_SCREENSHOT", str(tmp_path / "dashboard.png")))
    assert "Somebody else's" not in page.content()


def test_a_wrong_password_keeps_the_browser_on_the_sign_in_form(web_url, page, user):
    page.goto(web_url + "/")
    page.fill("#email", user.email)
    page.fill("#password", "not-the-password")
    page.click("button:has-text('Sign in')")
    page.wait_for_selector("#password")
    assert page.locator("#code").count() == 0
