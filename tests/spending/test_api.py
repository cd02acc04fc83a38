"""GET /auth/spend, the Account page's spending table and the admin's ledger: what a user
spent per day and model, from the ledger, for that user only."""

import re
from datetime import timedelta
from decimal import Decimal

import pytest
from django.urls import reverse
from django.utils import timezone

from spending.models import SpendEntry
from tests.page_helpers import signed_in_client
from tests.spending.helpers import record_past_spend

pytestmark = pytest.mark.django_db


@pytest.fixture
def history(user, other_user, project, settings):
    """Three calls two days ago (two models), one a minute ago, one 40 days ago; and another
    user's call."""
    settings.LLM_USER_DAILY_BUDGET_USD = Decimal("50")
    before = [
        record_past_spend(user=user, project=project, cost="0.25", ago=timedelta(days=2)),
        record_past_spend(user=user, cost="0.50", ago=timedelta(days=2)),
        record_past_spend(user=user, cost="0.10", ago=timedelta(days=2), model="gpt-4o-mini"),
    ]
    today = record_past_spend(user=user, cost="1.00", ago=timedelta(minutes=1))
    record_past_spend(user=user, cost="9.00", ago=timedelta(days=40))
    record_past_spend(user=other_user, cost="7.00", ago=timedelta(minutes=1))
    return before[0].created_at.date(), today.created_at.date()


def _model(name: str, cost: str, calls: int) -> dict:
    return {
        "provider": "vendor",
        "model": name,
        "cost_usd": cost,
        "tokens_in": 1000 * calls,
        "tokens_out": 500 * calls,
        "calls": calls,
    }


def test_spend_gives_the_users_totals_per_day_and_model(api_client, history):
    earlier, today = history

    response = api_client.get("/auth/spend?days=30")

    assert response.status_code == 200
    assert response.json() == {
        "days": 30,
        "first_day": str(timezone.now().date() - timedelta(days=29)),
        "last_day": str(timezone.now().date()),
        "total_usd": "1.850000",
        "last_24h_usd": "1.000000",
        "daily_budget_usd": "50.000000",
        "by_day": [
            {
                "date": str(earlier),
                "cost_usd": "0.850000",
                "tokens_in": 3000,
                "tokens_out": 1500,
                "calls": 3,
                "models": [_model("gpt-4o", "0.750000", 2), _model("gpt-4o-mini", "0.100000", 1)],
            },
            {
                "date": str(today),
                "cost_usd": "1.000000",
                "tokens_in": 1000,
                "tokens_out": 500,
                "calls": 1,
                "models": [_model("gpt-4o", "1.000000", 1)],
            },
        ],
    }


def test_spend_keeps_what_a_deleted_project_spent(api_client, history, project):
    assert api_client.delete(f"/projects/{project.pk}").status_code == 204

    assert api_client.get("/auth/spend?days=30").json()["total_usd"] == "1.850000"


@pytest.mark.parametrize("days", ["0", "367", "-1", "1.5", "week"])
def test_spend_refuses_days_outside_one_to_the_limit(api_client, days):
    response = api_client.get("/auth/spend", {"days": days})

    assert response.status_code == 400
    assert response.json() == {
        "detail": "days must be a whole number from 1 to 366.",
        "code": "invalid_days",
    }


def test_spend_needs_a_signed_in_user(anon_client):
    assert anon_client.get("/auth/spend").status_code == 401


def test_the_account_page_lists_spending_per_day(user, history):
    earlier, _ = history
    client = signed_in_client(user)

    html = client.get("/account").content.decode()

    assert "Last 24 hours: <strong>$1.00</strong> of the $50.00" in html
    assert "Last 30 days: <strong>$1.85</strong>" in html
    row = re.search(rf'<time datetime="{earlier:%Y-%m-%d}">.*?</tr>', html, re.S)
    assert row is not None
    cells = re.findall(r"<td[^>]*>(.*?)</td>", row.group(0), re.S)
    assert cells == ["3", "3,000 / 1,500", "$0.85", "vendor:gpt-4o $0.75; vendor:gpt-4o-mini $0.10"]
    assert "$7.00" not in html  # another user's


def test_the_admin_shows_the_whole_ledger_and_changes_none_of_it(admin_client, history, project):
    project_id, name = project.pk, project.name
    project.delete()
    entry = SpendEntry.objects.get(project_ref=project_id)

    listing = admin_client.get(reverse("admin:spending_spendentry_changelist"))
    detail = admin_client.get(reverse("admin:spending_spendentry_change", args=[entry.pk]))

    assert listing.status_code == detail.status_code == 200
    assert listing.context["cl"].result_count == SpendEntry.objects.count() == 6
    assert name in detail.content.decode()
    assert admin_client.get(reverse("admin:spending_spendentry_add")).status_code == 403
    delete = reverse("admin:spending_spendentry_delete", args=[entry.pk])
    assert admin_client.post(delete, {"post": "yes"}).status_code == 403
    assert SpendEntry.objects.count() == 6


def test_metrics_count_what_was_spent_from_the_ledger_after_the_project_is_gone(
    client, history, project
):
    from tests.ops.test_metrics import _sample

    project.delete()

    text = client.get("/metrics").content.decode()
    labels = {"provider": "vendor", "model": "gpt-4o"}
    # 0.25 + 0.50 + 1.00 + 9.00 of the user, 7.00 of another user.
    assert _sample(text, "aiflow_spend_usd_total", **labels) == 17.75
    assert _sample(text, "aiflow_spend_tokens_total", direction="in", **labels) == 5000
    assert _sample(text, "aiflow_spend_usd_total", provider="vendor", model="gpt-4o-mini") == 0.1
