"""Dispatch: a plan task starts when its own dependencies are green, integration when all are.

Claims are conditional updates, so of several workers that finish at once exactly one
queues what follows (``docs/architecture.md`` says how).
"""

from __future__ import annotations

from contextlib import nullcontext
from typing import Any

from django.db import connection, transaction
from django.db.models import Exists, OuterRef
from django.utils import timezone

from common.db import prepared_cursor

from ...events import events_hooked, events_stored
from ...flow import INTEGRATE, Next
from ...models import PlanTask, Run

_CLAIM_READY = """
UPDATE pipeline_plantask AS t SET dispatched_at = now(), status = 'running'
WHERE t.run_id = %s AND t.status = 'pending' AND t.dispatched_at IS NULL
  AND NOT EXISTS (
    SELECT 1 FROM pipeline_plantask AS d
    WHERE d.run_id = t.run_id AND jsonb_exists(t.depends_on, d.key) AND d.status <> 'succeeded'
  )
RETURNING t.id
"""


def plan_claim_ready(*, run_id: int) -> list[int]:
    """Claim the run's tasks whose dependencies are all green and that nobody queued yet.

    One conditional UPDATE: of several workers that finish dependencies of one task at the
    same moment, exactly one gets it back (PostgreSQL re-checks ``dispatched_at`` on the
    row it waited for). Callers must have committed their own task's green status first,
    so that the last of them to finish sees every dependency green.
    """
    with connection.cursor() as cursor:
        cursor.execute(_CLAIM_READY, [run_id])
        return sorted(row[0] for row in cursor.fetchall())


def plan_claim_integration(*, run_id: int) -> bool:
    """Claim integration once every task of an active run is green; True for the one winner."""
    unfinished = PlanTask.objects.filter(run_id=OuterRef("id")).exclude(
        status=PlanTask.Status.SUCCEEDED
    )
    return bool(
        Run.objects.filter(id=run_id, status__in=Run.ACTIVE, integration_claimed_at__isnull=True)
        .filter(Exists(PlanTask.objects.filter(run_id=OuterRef("id"))))
        .exclude(Exists(unfinished))
        .update(integration_claimed_at=timezone.now())
    )


# ``plan_claim_ready`` and ``plan_claim_integration`` in one statement. Both read the tasks
# as the statement found them: when every task is green none is ready, so integration is
# claimed only when no task was. Claiming integration records the coding stage's end (as
# ``stage_mark`` does: once, with its event); the edge was recorded now when the run's
# ``stages`` hold this statement's own timestamp.
_CODING_DONE = "COALESCE(r.stages -> 'coding', '{}'::jsonb) ? 'completed_at'"
_CLAIM_NEXT = (
    "WITH ready AS ("  # noqa: S608
    + _CLAIM_READY.replace("%s", "%(run)s")
    + """), integration AS (
    UPDATE pipeline_run AS r SET integration_claimed_at = now(),
        stages = CASE WHEN """
    + _CODING_DONE
    + """ THEN r.stages ELSE jsonb_set(r.stages, '{coding}',
            COALESCE(r.stages -> 'coding', '{}'::jsonb)
                || jsonb_build_object('completed_at', %(at)s::text)) END,
        next_event_seq = r.next_event_seq + CASE WHEN """
    + _CODING_DONE
    + """ THEN 0 ELSE 1 END,
        heartbeat_at = clock_timestamp()
    WHERE r.id = %(run)s AND r.status = ANY(%(active)s) AND r.integration_claimed_at IS NULL
      AND EXISTS (SELECT 1 FROM pipeline_plantask AS p WHERE p.run_id = r.id)
      AND NOT EXISTS (
        SELECT 1 FROM pipeline_plantask AS p WHERE p.run_id = r.id AND p.status <> 'succeeded'
      )
    RETURNING r.id, r.next_event_seq - 1 AS seq,
        r.stages -> 'coding' ->> 'completed_at' = %(at)s::text AS marked
), edge AS (
    INSERT INTO pipeline_event (run_id, seq, type, payload, at)
    SELECT %(run)s, seq, 'stage.completed', '{"stage": "coding"}'::jsonb, clock_timestamp()
    FROM integration WHERE marked
    RETURNING id, seq, type, payload, at
)
SELECT (SELECT array_agg(id ORDER BY id) FROM ready), EXISTS (SELECT 1 FROM integration),
    edge.id, edge.seq, edge.type, edge.payload, edge.at
FROM (SELECT 1) AS one LEFT JOIN edge ON true
"""
)


def plan_next(*, run_id: int) -> Next | None:
    """What the plan needs now: the tasks just claimed, or integration, or nothing yet."""
    params: dict[str, Any] = {
        "run": run_id,
        "active": list(Run.ACTIVE),
        "at": timezone.now().isoformat(),
    }
    hooked = events_hooked(["stage.completed"]) and not connection.in_atomic_block
    with transaction.atomic() if hooked else nullcontext(), prepared_cursor() as cursor:
        cursor.execute(_CLAIM_NEXT, params)
        row = cursor.fetchone()
        events_stored(run_id=run_id, rows=[row[2:]])
    ready, integration = row[:2]
    if ready:
        return Next.tasks(*((task_id, 1) for task_id in ready))
    if integration:
        return INTEGRATE
    return None
