"""A run's state: its events, stage edges, completion, status changes, failure and bounds.

Every status change is a conditional update (``filter(status__in=...).update(...)``), so two
workers (or a worker and a user) never both win a transition, and the run's final event is
published in the same transaction as its final status: no event follows it.
"""

from __future__ import annotations

import json
from contextlib import nullcontext
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from common.db import PrecompiledQuery, prepared_cursor
from common.logging import get_logger

from ..canvas import canvas_revoke
from ..events import events_hooked, events_stored, publish, publish_many
from ..models import Event, Run, Step

logger = get_logger(__name__)

TERMINAL_EVENTS = {"run.completed", "run.failed", "run.cancelled"}


def run_revoke(run_id: int) -> None:
    """Revoke the run's queued tasks; a broker away is logged, never raised (the tasks stop
    at their status check anyway)."""
    try:
        canvas_revoke(run_id=run_id)
    except Exception:
        logger.warning("run.revoke_failed", run_id=run_id, exc_info=True)


class RunStopped(Exception):
    """The run is not active (finished, cancelled, or waiting for approval): stop quietly."""

    def __init__(self, run_id: int):
        super().__init__(f"run {run_id} is not active")
        self.run_id = run_id


# --- events and stages ----------------------------------------------------------------------


def emit(*, run_id: int, type: str, payload: dict[str, Any] | None = None) -> Event | None:  # noqa: A002
    """Publish an event unless the run already ended (its final event stays the last one)."""
    stored = publish_many(
        run_id=run_id, events=[(type, payload or {})], force=type in TERMINAL_EVENTS
    )
    return stored[0] if stored else None


# A stage's edge, in one statement: recorded once in the run's ``stages`` with its event
# (none when it was recorded before, or the run finished), and, for the stage's first task,
# the run's status moved on from ``from`` and its ``started_at`` set if still empty. The run
# row is locked first (``FOR UPDATE`` reads its latest version), so two workers marking one
# edge at once record it, and publish its event, once.
_STAGE_MARK = """
WITH old AS (
    SELECT id, COALESCE(stages -> %(stage)s::text, '{}'::jsonb) ? %(field)s::text AS marked
    FROM pipeline_run
    WHERE id = %(run)s AND status NOT IN ('completed', 'failed', 'cancelled')
    FOR UPDATE
), marked AS (
    UPDATE pipeline_run AS r SET
        status = CASE WHEN r.status = ANY(%(from)s::text[]) THEN %(status)s ELSE r.status END,
        started_at = CASE WHEN %(started)s THEN COALESCE(r.started_at, %(now)s)
            ELSE r.started_at END,
        stages = CASE WHEN old.marked THEN r.stages
            ELSE jsonb_set(r.stages, ARRAY[%(stage)s::text],
                COALESCE(r.stages -> %(stage)s::text, '{}'::jsonb)
                    || jsonb_build_object(%(field)s::text, %(at)s::text))
            END,
        next_event_seq = r.next_event_seq + CASE WHEN old.marked THEN 0 ELSE 1 END,
        heartbeat_at = clock_timestamp(),
        design = COALESCE(%(design)s::jsonb, r.design)
    FROM old WHERE r.id = old.id
    RETURNING r.next_event_seq - 1 AS seq, old.marked
)
INSERT INTO pipeline_event (run_id, seq, type, payload, at)
SELECT %(run)s, seq, %(type)s::text, %(payload)s::jsonb, clock_timestamp() FROM marked
WHERE NOT marked
RETURNING id, seq, type, payload, at
"""


def stage_mark(
    *,
    run_id: int,
    stage: str,
    edge: str,
    status: str | None = None,
    from_statuses: tuple[str, ...] = (),
    started: bool = False,
    design: dict[str, Any] | None = None,
) -> bool:
    """Record that ``stage`` ``edge`` ("started"/"completed") happened, once; emit its event.

    In the same statement the run moves to ``status`` if it is in one of ``from_statuses``,
    with ``started`` its ``started_at`` is set if still empty (a stage's first task), and
    with ``design`` its design is stored (the approved one, with the design's end).
    Whether the edge was recorded now.
    """
    kind = f"stage.{edge}"
    now = timezone.now()
    params: dict[str, Any] = {
        "run": run_id,
        "stage": stage,
        "field": f"{edge}_at",
        "at": now.isoformat(),
        "now": now,
        "status": status,
        "from": list(from_statuses) if status is not None else [],
        "started": started,
        "type": kind,
        "payload": json.dumps({"stage": stage}),
        "design": json.dumps(design) if design is not None else None,
    }
    hooked = events_hooked([kind]) and not connection.in_atomic_block
    with transaction.atomic() if hooked else nullcontext():
        with prepared_cursor() as cursor:
            cursor.execute(_STAGE_MARK, params)
            rows = cursor.fetchall()
        events_stored(run_id=run_id, rows=rows)
    return bool(rows)


# A run's completion, in one statement: its last stage's end (once, as ``_STAGE_MARK``), its
# status, and its ``run.completed`` event last, only while it is active.
_RUN_COMPLETE = """
WITH old AS (
    SELECT id, COALESCE(stages -> %(stage)s::text, '{}'::jsonb) ? 'completed_at' AS marked
    FROM pipeline_run
    WHERE id = %(run)s AND status = ANY(%(active)s)
    FOR UPDATE
), done AS (
    UPDATE pipeline_run AS r SET
        status = 'completed', finished_at = %(now)s, heartbeat_at = %(now)s,
        stages = CASE WHEN old.marked THEN r.stages
            ELSE jsonb_set(r.stages, ARRAY[%(stage)s::text],
                COALESCE(r.stages -> %(stage)s::text, '{}'::jsonb)
                    || jsonb_build_object('completed_at', %(at)s::text)) END,
        next_event_seq = r.next_event_seq + CASE WHEN old.marked THEN 1 ELSE 2 END
    FROM old WHERE r.id = old.id
    RETURNING r.next_event_seq AS next, old.marked
)
INSERT INTO pipeline_event (run_id, seq, type, payload, at)
SELECT %(run)s, next - 2, 'stage.completed', %(edge)s::jsonb, clock_timestamp()
FROM done WHERE NOT marked
UNION ALL
SELECT %(run)s, next - 1, 'run.completed', %(payload)s::jsonb, clock_timestamp() FROM done
RETURNING id, seq, type, payload, at
"""


def run_complete(*, run_id: int, stage: str, payload: dict[str, Any]) -> bool:
    """Complete an active run: ``stage``'s end, the status and ``run.completed`` (with
    ``payload``) in one statement, inside the caller's transaction. Whether it completed now."""
    now = timezone.now()
    with prepared_cursor() as cursor:
        cursor.execute(
            _RUN_COMPLETE,
            {
                "run": run_id,
                "stage": stage,
                "active": list(Run.ACTIVE),
                "now": now,
                "at": now.isoformat(),
                "edge": json.dumps({"stage": stage}),
                "payload": json.dumps(payload),
            },
        )
        rows = cursor.fetchall()
    events_stored(run_id=run_id, rows=rows)
    return bool(rows)


def run_touch(*, run_id: int) -> None:
    """The run is alive: the reaper leaves it alone for another PIPELINE_STALE_SECONDS."""
    Run.objects.filter(id=run_id).update(heartbeat_at=timezone.now())


def run_set_status(*, run_id: int, status: str, from_statuses: tuple[str, ...]) -> bool:
    """Move the run to ``status`` if it is in one of ``from_statuses``."""
    return bool(
        Run.objects.filter(id=run_id, status__in=from_statuses).update(
            status=status, heartbeat_at=timezone.now()
        )
    )


# --- failure and bounds ---------------------------------------------------------------------


def run_fail(*, run_id: int, code: str, detail: str) -> bool:
    """End an active run as failed with ``code`` (the reason) and ``detail``; once."""
    with transaction.atomic():
        updated = Run.objects.filter(id=run_id, status__in=Run.UNFINISHED).update(
            status=Run.Status.FAILED,
            error=detail[:4000],
            error_code=code[:64],
            finished_at=timezone.now(),
        )
        if not updated:
            return False
        Step.objects.filter(run_id=run_id, status=Step.Status.PENDING).update(
            status=Step.Status.SKIPPED
        )
        publish(run_id=run_id, type="run.failed", payload={"reason": code, "detail": detail})
        transaction.on_commit(lambda: run_revoke(run_id))
    logger.warning("run.failed", run_id=run_id, reason=code, detail=detail[:300])
    return True


# Read before most steps: compiled once per process.
_run_by_id = PrecompiledQuery(lambda run_id: Run.objects.filter(id=run_id))


def run_read(*, run_id: int) -> Run:
    """The run (``Run.DoesNotExist`` if there is none), read with SQL compiled once."""
    run = _run_by_id.first(run_id)
    if run is None:
        raise Run.DoesNotExist("Run matching query does not exist.")
    return run


def run_check_bounds(*, run_id: int, run: Run | None = None) -> Run:
    """The run, if active and within its bounds; else ``RunStopped`` (failing it if a bound hit).

    Bounds checked before every step: wall time, tokens, dollars. (Rounds, fix attempts and
    consult rounds are counted where they loop.) ``run`` is the run just read with another
    row (a plan task's), checked without reading it again.
    """
    if run is None or run.id != run_id:
        run = run_read(run_id=run_id)
    if run.status not in Run.ACTIVE:
        raise RunStopped(run_id)
    reason = None
    if run.deadline_at is not None and timezone.now() > run.deadline_at:
        reason = ("wall_time", f"The run took longer than {settings.PIPELINE_MAX_WALL_SECONDS}s.")
    elif run.tokens_in + run.tokens_out > settings.PIPELINE_MAX_RUN_TOKENS:
        reason = (
            "max_tokens",
            f"The run used more than {settings.PIPELINE_MAX_RUN_TOKENS} tokens.",
        )
    elif run.budget_usd is not None and run.cost_usd >= run.budget_usd:
        reason = ("budget", f"The run spent its budget of ${run.budget_usd}.")
    if reason:
        run_fail(run_id=run_id, code=reason[0], detail=reason[1])
        raise RunStopped(run_id)
    return run
