"""Reads of the spend ledger, always for one user.

What a user spent is read from ``SpendEntry`` rows, which outlive the projects and runs
they were spent on: deleting either never gives a dollar back.
"""

from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db.models import Count, Sum
from django.db.models.functions import TruncDate
from django.utils import timezone

from common.errors import ApplicationError

from .models import SpendEntry


def spend_last_day_usd(*, user_id: int) -> Decimal:
    """What the user's paid calls cost over the last 24 hours, in USD (from the ledger)."""
    since = timezone.now() - timedelta(hours=24)
    total = SpendEntry.objects.filter(user_ref=user_id, created_at__gte=since).aggregate(
        total=Sum("cost_usd")
    )["total"]
    return total or Decimal(0)


def spend_days_validate(raw: Any) -> int:
    """``days`` of a spend history: a whole number from 1 to ``SPEND_HISTORY_MAX_DAYS``."""
    most = int(settings.SPEND_HISTORY_MAX_DAYS)
    if raw is None or raw == "":
        return min(30, most)
    text = str(raw).strip()
    if not text.isdigit() or not 1 <= int(text) <= most:
        raise ApplicationError(
            f"days must be a whole number from 1 to {most}.", code="invalid_days"
        )
    return int(text)


def spend_history_for_user(*, user: Any, days: int) -> dict[str, Any]:
    """The user's spending per day (UTC) over the last ``days`` days, each day by model.

    Only days with spending are listed, oldest first. ``last_24h_usd`` is what the daily cap
    (``daily_budget_usd``, None without one) is checked against when a run starts.
    """
    today = timezone.now().date()
    first = today - timedelta(days=days - 1)
    since = timezone.make_aware(datetime.combine(first, time.min))  # the index's terms
    rows = (
        SpendEntry.objects.filter(user_ref=user.pk, created_at__gte=since)
        .annotate(day=TruncDate("created_at"))
        .values("day", "provider", "model")
        .annotate(
            cost=Sum("cost_usd"),
            tokens_in=Sum("tokens_in"),
            tokens_out=Sum("tokens_out"),
            calls=Count("id"),
        )
        .order_by("day", "-cost", "provider", "model")
    )
    by_day: dict[date, dict[str, Any]] = {}
    for row in rows:
        day = by_day.setdefault(
            row["day"],
            {
                "date": row["day"],
                "cost_usd": Decimal(0),
                "tokens_in": 0,
                "tokens_out": 0,
                "calls": 0,
                "models": [],
            },
        )
        day["cost_usd"] += row["cost"]
        day["tokens_in"] += row["tokens_in"]
        day["tokens_out"] += row["tokens_out"]
        day["calls"] += row["calls"]
        day["models"].append(
            {
                "provider": row["provider"],
                "model": row["model"],
                "cost_usd": row["cost"],
                "tokens_in": row["tokens_in"],
                "tokens_out": row["tokens_out"],
                "calls": row["calls"],
            }
        )
    listed = list(by_day.values())
    return {
        "days": days,
        "first_day": first,
        "last_day": today,
        "total_usd": sum((day["cost_usd"] for day in listed), Decimal(0)),
        "last_24h_usd": spend_last_day_usd(user_id=user.pk),
        "daily_budget_usd": settings.LLM_USER_DAILY_BUDGET_USD,
        "by_day": listed,
    }
