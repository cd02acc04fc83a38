"""Progress events: ``publish`` stores the next event of a run (the source of truth).

Every event is a row with a gap-free per-run ``seq``. When the publishing transaction
commits, the event is also pushed to the Channels group ``run-<id>`` so that open
WebSockets and SSE streams learn about it at once (through one channel per web process,
``pipeline.fanout``). A reader sends a pushed event as it came only when it follows the last
one it sent; a gap, a final event, a lost push or a quiet heartbeat interval sends it to the
table, so a lost push costs nothing and every reader sees the events in ``seq`` order.
"""

import asyncio
import json
import os
import threading
from collections.abc import Callable, Iterable
from typing import Any

from django.db import connection, transaction
from django.db.models import QuerySet

from common.db import prepared_cursor
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


class _Pusher:
    """Sends pushes from one asyncio loop thread per process, in order, off the caller's path.

    ``async_to_sync(group_send)`` from a worker thread costs a new event loop and a new
    Redis connection each time (milliseconds on every step); here one loop keeps the
    channel layer's connections and the caller only enqueues. The events of a run that wait
    together (those one transaction stored, and any queued meanwhile) go as one group
    message (``pipeline.fanout.fanout_batch``): each ``group_send`` is two Redis round trips
    and a script, a tenth of a run's worker CPU when sent once per event.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._queue: asyncio.Queue[tuple[int, list[dict[str, Any]]]] | None = None
        self._pid = 0

    def submit(self, run_id: int, events: list[dict[str, Any]]) -> None:
        loop, queue = self._started()
        loop.call_soon_threadsafe(queue.put_nowait, (run_id, events))

    def _started(self) -> tuple[asyncio.AbstractEventLoop, asyncio.Queue]:
        with self._lock:
            if self._loop is None or self._queue is None or self._pid != os.getpid():
                # The first push of this process (or of a forked child) starts its loop.
                self._pid = os.getpid()
                self._loop = asyncio.new_event_loop()
                self._queue = asyncio.Queue()
                threading.Thread(
                    target=self._run, args=(self._loop, self._queue), name="event-push", daemon=True
                ).start()
            return self._loop, self._queue

    @staticmethod
    def _run(loop: asyncio.AbstractEventLoop, queue: asyncio.Queue) -> None:
        async def send(run_id: int, events: list[dict[str, Any]]) -> None:
            from channels.layers import get_channel_layer

            from .fanout import fanout_batch

            messages = [{"type": CHANNEL_MESSAGE_TYPE, "event": event} for event in events]
            try:
                layer = get_channel_layer()
                if layer is not None:
                    await layer.group_send(
                        run_group_name(run_id),
                        messages[0] if len(messages) == 1 else fanout_batch(messages),
                    )
            except Exception:  # the table is the source of truth; readers catch up
                logger.warning(
                    "event.push_failed", run_id=run_id, seq=events[0].get("seq"), exc_info=True
                )

        async def drain() -> None:
            while True:
                waiting = [await queue.get()]
                while not queue.empty():
                    waiting.append(queue.get_nowait())
                by_run: dict[int, list[dict[str, Any]]] = {}
                for run_id, events in waiting:  # each run's events in the order they came
                    by_run.setdefault(run_id, []).extend(events)
                for run_id, events in by_run.items():
                    await send(run_id, events)

        asyncio.set_event_loop(loop)
        loop.run_until_complete(drain())


_pusher = _Pusher()


def _push(*, run_id: int, events: list[dict[str, Any]]) -> None:
    """Send serialized events to the run's group (in the background, in order); never raises."""
    try:
        _pusher.submit(run_id, events)
    except Exception:
        logger.warning("event.push_failed", run_id=run_id, seq=events[0].get("seq"), exc_info=True)


# One statement numbers and stores a batch of events: the run's counter row is locked by the
# UPDATE until the caller's transaction ends, so concurrent publishers of one run get
# consecutive numbers in commit order. It also marks the run as alive (``heartbeat_at``).
# Unless forced, nothing is stored once the run has finished (its final event stays last).
_PUBLISH = """
WITH counter AS (
    UPDATE pipeline_run
    SET next_event_seq = next_event_seq + %(count)s, heartbeat_at = clock_timestamp()
    WHERE id = %(run)s AND (%(force)s OR status NOT IN ('completed', 'failed', 'cancelled'))
    RETURNING next_event_seq - %(count)s AS first
)
INSERT INTO pipeline_event (run_id, seq, type, payload, at)
SELECT %(run)s, counter.first + item.n, item.type, item.payload, clock_timestamp()
FROM counter, jsonb_to_recordset(%(items)s::jsonb) AS item(n int, type text, payload jsonb)
RETURNING id, seq, type, payload, at
"""


EventHook = Callable[[list[Event]], object]
# Other parts of the platform that act on events of some types (webhook deliveries, trace
# spans): each hook gets the stored events of its types inside the transaction that stores
# them, so what it writes commits, or rolls back, with the events.
_hooks: list[tuple[frozenset[str], EventHook]] = []


def events_hook_add(*, types: Iterable[str], hook: EventHook) -> None:
    """Call ``hook`` with every stored event of ``types``, in the transaction that stores it
    (events stored by ``publish``/``publish_many``: the run's status events all are)."""
    _hooks.append((frozenset(types), hook))


def events_hook_remove(hook: EventHook) -> None:
    """Stop calling ``hook``."""
    _hooks[:] = [entry for entry in _hooks if entry[1] is not hook]


def publish_many(
    *, run_id: int, events: list[tuple[str, dict[str, Any]]], force: bool = True
) -> list[Event]:
    """Store ``(type, payload)`` events in order with gap-free ``seq``s, in one round trip.

    Each is pushed to Channels when the surrounding transaction commits. With
    ``force=False`` nothing is stored if the run has already finished. Hooks of these types
    (``events_hook_add``) run in the same transaction.
    """
    if not events:
        return []
    hooked = [(types, hook) for types, hook in _hooks if any(kind in types for kind, _ in events)]
    if hooked and not connection.in_atomic_block:
        with transaction.atomic():
            return publish_many(run_id=run_id, events=events, force=force)
    items = [{"n": n, "type": kind, "payload": payload} for n, (kind, payload) in enumerate(events)]
    with prepared_cursor() as cursor:
        cursor.execute(
            _PUBLISH,
            {"run": run_id, "count": len(items), "force": force, "items": json.dumps(items)},
        )
        rows = cursor.fetchall()
    stored = sorted(
        (
            Event(id=id_, run_id=run_id, seq=seq, type=kind, payload=_json(payload), at=at)
            for id_, seq, kind, payload, at in rows
        ),
        key=lambda event: event.seq,
    )
    for types, hook in hooked:
        chosen = [event for event in stored if event.type in types]
        if chosen:
            hook(chosen)
    events_push_on_commit(run_id=run_id, events=stored)
    return stored


def events_hooked(types: Iterable[str]) -> bool:
    """Whether a hook (``events_hook_add``) wants events of any of ``types``: storing them
    then needs a transaction for what the hook writes."""
    wanted = set(types)
    return any(wanted & hook_types for hook_types, _ in _hooks)


def events_stored(*, run_id: int, rows: Iterable[tuple[Any, ...]]) -> list[Event]:
    """Events a statement of another module stored (``(id, seq, type, payload, at)`` rows,
    NULL ids skipped), in ``seq`` order: their hooks called, pushed once the transaction
    commits. The caller stores hooked types (``events_hooked``) inside a transaction."""
    stored = sorted(
        (
            Event(id=id_, run_id=run_id, seq=seq, type=kind, payload=_json(payload), at=at)
            for id_, seq, kind, payload, at in rows
            if id_ is not None
        ),
        key=lambda event: event.seq,
    )
    for types, hook in _hooks:
        chosen = [event for event in stored if event.type in types]
        if chosen:
            hook(chosen)
    events_push_on_commit(run_id=run_id, events=stored)
    return stored


def events_push_on_commit(*, run_id: int, events: list[Event]) -> None:
    """Push stored ``events`` to the run's group once the current transaction commits."""
    messages = [event_serialize(event) for event in events]

    def push() -> None:
        _push(run_id=run_id, events=messages)

    if messages:
        transaction.on_commit(push)


def _json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str | bytes) else value


def publish(*, run_id: int, type: str, payload: dict[str, Any] | None = None) -> Event:  # noqa: A002
    """Insert the run's next event with a gap-free ``seq``; push it to Channels on commit."""
    return publish_many(run_id=run_id, events=[(type, payload or {})])[0]


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


def publish_files_written(artifacts: list[Any]) -> None:
    """The ``file.written`` events of stored artifacts of one run, in one statement
    (``artifact_store_tree``'s callback)."""
    if not artifacts:
        return
    publish_many(
        run_id=artifacts[0].run_id,
        events=[
            (
                "file.written",
                {"path": artifact.path, "sha256": artifact.sha256, "size": artifact.size},
            )
            for artifact in artifacts
        ],
    )
