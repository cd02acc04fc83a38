"""Spending that happened before a test: ledger rows and the user's spend window, backdated.

The window's format is ``spending.models.SpendWindow``'s (ten-minute buckets); calls made
during a test go through the real ledger (``pipeline.services.ledger``) instead.
"""

import math
from datetime import timedelta
from decimal import Decimal
from typing import Any

from django.utils import timezone

from spending.models import SpendEntry, SpendWindow
from spending.sql import BUCKET_SECONDS


def record_past_spend(
    *,
    user: Any,
    cost: str,
    ago: timedelta,
    project: Any = None,
    run: Any = None,
    model: str = "gpt-4o",
) -> SpendEntry:
    """A paid call of ``user`` that cost ``cost`` USD, ``ago`` before now."""
    at = timezone.now() - ago
    entry = SpendEntry.objects.create(
        user=user,
        user_ref=user.pk,
        user_email=user.email,
        project=project,
        project_ref=project.pk if project is not None else None,
        project_name=project.name if project is not None else "",
        run=run,
        run_ref=run.pk if run is not None else None,
        step_key="design:1:architect",
        role="architect",
        provider="vendor",
        model=model,
        tokens_in=1000,
        tokens_out=500,
        cost_usd=Decimal(cost),
        created_at=at,
    )
    window, _ = SpendWindow.objects.get_or_create(user=user, defaults={"updated_at": at})
    bucket = str(math.floor(at.timestamp() / BUCKET_SECONDS))
    window.buckets[bucket] = float(Decimal(str(window.buckets.get(bucket, 0))) + Decimal(cost))
    window.save(update_fields=["buckets"])
    return entry
