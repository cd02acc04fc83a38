"""Progress events: ``publish`` stores the next event of a run (the source of truth).

Every event is a row with a gap-free per-run ``seq``. When the publishing transaction
commits, the event is also pushed to the Channels group ``run-<id>`` so that open
WebSockets and SSE streams learn about it at once; a lost push costs nothing, because
readers always take the events themselves from the table, in ``seq`` order.
"""

from typing import Any

from asgiref.sync import async_to_sync
from django.db import transaction
from django.db.models import F, QuerySet

from common.logging import get_logger

from .models import Event, Run

logger = get_logger(__name__)

#: The event that ends a run's stream, whatever the outcome.
FINAL_EVENT_TYPES = frozenset({"run.completed", "run.failed", "run.cancelled"})
#: The Channels message type (``run.event`` -> consumer method ``run_event``).
CHANNEL_MESSAGE_TYPE = "run.event"


def run_group_name(run_id: int) -> str:
    """The Channels group a run's events are pushed to."""
    return f"run-{run_id}"


def event_serialize(event: Event) -> dict[str, Any]:
    """The wire form shared by SSE, WebSocket and the CLI: ``{seq, type, at, payload}``."""
    return {
        "seq": event.seq,
        "type": event.type,
        "at": event.at.isoformat().replace("+00:00", "Z"),
        "payload": event.payload,
    }


def _push(*, run_id: int, message: dict[str, Any]) -> None:
    """Send one event to the run's group; a failure is logged, never raised."""
    from channels.layers import get_channel_layer

    try:
        layer = get_channel_layer()
        if layer is None:
            return
        async_to_sync(layer.group_send)(
            run_group_name(run_id), {"type": CHANNEL_MESSAGE_TYPE, "event": message}
        )
    except Exception:  # the table is the source of truth; readers catch up by polling
        logger.warning("event.push_failed", run_id=run_id, seq=message.get("seq"), exc_info=True)


def publish(*, run_id: int, type: str, payload: dict[str, Any] | None = None) -> Event:  # noqa: A002
    """Insert the run's next event with a gap-free ``seq``; push it to Channels on commit.

    The counter row is locked for the insert, so concurrent publishers of one run get
    consecutive numbers in commit order.
    """
    with transaction.atomic():
        Run.objects.filter(id=run_id).update(next_event_seq=F("next_event_seq") + 1)
        seq = Run.objects.values_list("next_event_seq", flat=True).get(id=run_id) - 1
        event = Event.objects.create(run_id=run_id, seq=seq, type=type, payload=payload or {})
        message = event_serialize(event)
        transaction.on_commit(lambda: _push(run_id=run_id, message=message))
    return event


def event_list_after(*, run_id: int, after_seq: int = 0, limit: int = 500) -> QuerySet[Event]:
    """The run's events with ``seq > after_seq``, in ``seq`` order, at most ``limit``."""
    return Event.objects.filter(run_id=run_id, seq__gt=after_seq).order_by("seq")[:limit]


def event_final_seq(*, run_id: int) -> int | None:
    """The ``seq`` of the run's final event, or ``None`` while the run has not ended.

    A resumed run has an earlier final event followed by ``run.resumed``: that one is no
    longer final, so a stream reading through it goes on to the run's current end.
    """
    last_final = (
        Event.objects.filter(run_id=run_id, type__in=FINAL_EVENT_TYPES)
        .order_by("-seq")
        .values_list("seq", flat=True)
        .first()
    )
    if last_final is None:
        return None
    resumed_later = Event.objects.filter(
        run_id=run_id, type="run.resumed", seq__gt=last_final
    ).exists()
    return None if resumed_later else last_final


def run_get_for_owner(*, user: Any, run_id: int) -> Run | None:
    """The run if ``user`` owns its project, else ``None`` (another user's run does not exist)."""
    if user is None or not getattr(user, "is_authenticated", False):
        return None
    return Run.objects.filter(id=run_id, project__owner=user).first()


def publish_file_written(artifact: Any) -> None:
    """The ``file.written`` event of a stored artifact (``artifact_store_tree``'s callback)."""
    publish(
        run_id=artifact.run_id,
        type="file.written",
        payload={"path": artifact.path, "sha256": artifact.sha256, "size": artifact.size},
    )
