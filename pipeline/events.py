"""Progress events: ``publish`` stores the next event of a run (the source of truth)."""

from typing import Any

from django.db import transaction
from django.db.models import F

from .models import Event, Run


def publish(*, run_id: int, type: str, payload: dict[str, Any] | None = None) -> Event:  # noqa: A002
    """Insert the run's next event with a gap-free ``seq``.

    The counter row is locked for the insert, so concurrent publishers of one run get
    consecutive numbers in commit order.
    """
    with transaction.atomic():
        Run.objects.filter(id=run_id).update(next_event_seq=F("next_event_seq") + 1)
        seq = Run.objects.values_list("next_event_seq", flat=True).get(id=run_id) - 1
        return Event.objects.create(run_id=run_id, seq=seq, type=type, payload=payload or {})
