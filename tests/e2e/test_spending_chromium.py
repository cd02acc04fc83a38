"""The Account page's spending table in Chromium: per day, per model, readable and accessible
at desktop and phone width."""

from datetime import timedelta

import pytest

from tests.e2e.conftest import PHONE, assert_accessible, screenshot_dir
from tests.factories import DEFAULT_PASSWORD
from tests.spending.helpers import record_past_spend

pytestmark = [pytest.mark.slow, pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def test_the_account_page_shows_what_was_spent_per_day_and_model(web_url, page, user, project):
    record_past_spend(user=user, project=project, cost="0.25", ago=timedelta(days=2))
    record_past_spend(user=user, cost="0.10", ago=timedelta(days=2), model="gpt-4o-mini")
    record_past_spend(user=user, cost="1.00", ago=timedelta(minutes=1))
    project.delete()  # what it spent stays

    page.goto(web_url + "/")
    page.get_by_label("Email").fill(user.email)
    page.get_by_label("Password").fill(DEFAULT_PASSWORD)
    page.get_by_role("button", name="Sign in", exact=True).click()
    page.get_by_role("heading", name="Your projects").wait_for()
    page.goto(web_url + "/account")

    spending = page.get_by_role("region", name="Spending")
    table = spending.get_by_role("table", name="What your runs spent per day")
    rows = table.get_by_role("row")
    assert rows.count() == 3  # the header and two days
    assert rows.nth(2).get_by_role("cell").all_inner_texts() == [
        "2",
        "2,000 / 1,000",
        "$0.35",
        "vendor:gpt-4o $0.25; vendor:gpt-4o-mini $0.10",
    ]
    assert "Last 30 days: $1.35" in spending.inner_text()
    assert_accessible(page)
    spending.scroll_into_view_if_needed()
    page.screenshot(path=str(screenshot_dir() / "account-spending.png"), full_page=True)
    page.set_viewport_size(PHONE)
    page.screenshot(path=str(screenshot_dir() / "account-spending-phone.png"), full_page=True)
