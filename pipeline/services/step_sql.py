"""The SQL of a step's two writes (``pipeline.services.steps``): its claim and its store.

Each is one statement, so a step's row, its run's counters and its events change together or
not at all (``docs/architecture.md``, "Statements per run"). The ledger's statements, which a
paid store shares, are in ``ledger_sql``.
"""

from __future__ import annotations

from common.db import compact_sql
from spending.sql import CLOCK

from .ledger_sql import STEPCALL_CTE, spend_ctes

# Create-and-claim in one statement, with the step's ``step.started`` event: a new step is
# inserted as running; an existing one is claimed only while pending; either only while its
# run is active and within its wall time (the bound checked before the step could otherwise
# pass while the claim is on its way, and a step would start after the deadline) and its
# tokens and dollars (``run_check_bounds``'s bounds, so a caller's earlier read of the run
# may be passed on without reading it again). The run's
# row is locked first (the order of ``run_fail`` and the reaper: run, then its steps), then
# the step is claimed, then the event numbered on the run's counter. No row comes back when
# the step exists in another status (or the run stopped, or its time is up):
# ``steps._claim_refused`` says which. A stage's edge (``StageEdge``, as ``_STAGE_MARK`` records
# it: once, with its event before ``step.started``, and the run's status and start) may be
# recorded by the same statement.
CLAIM = """
WITH active AS (
    SELECT id, %(stage)s::text IS NOT NULL
        AND NOT (COALESCE(stages -> %(stage)s::text, '{}'::jsonb) ? %(field)s::text) AS edge
    FROM pipeline_run WHERE id = %(run)s AND status = ANY(%(active)s)
        AND (deadline_at IS NULL OR deadline_at >= %(now)s)
        AND tokens_in + tokens_out <= %(max_tokens)s
        AND (budget_usd IS NULL OR cost_usd < budget_usd)
    FOR UPDATE
), claimed AS (
    INSERT INTO pipeline_step (
        run_id, key, role, round, attempt, plan_task_id, status, provider, model, tokens_in,
        tokens_out, cost_usd, latency_ms, llm_calls, input, output, error, created_at,
        started_at, finished_at, heartbeat_at, reused
    )
    SELECT active.id, %(key)s, %(role)s, %(round)s, %(attempt)s, %(plan_task)s, 'running', '',
        '', 0, 0, 0, 0, 0, %(input)s::jsonb, NULL, '', %(now)s, %(now)s, NULL, %(now)s, false
    FROM active
    ON CONFLICT (run_id, key) DO UPDATE
    SET status = 'running', started_at = EXCLUDED.started_at,
        heartbeat_at = EXCLUDED.heartbeat_at, error = ''
    WHERE pipeline_step.status = 'pending'
    RETURNING id, (xmax = 0) AS created, round, attempt
), counter AS (
    UPDATE pipeline_run AS r SET
        next_event_seq = r.next_event_seq + 1 + active.edge::int,
        heartbeat_at = clock_timestamp(),
        status = CASE WHEN r.status = ANY(%(from)s::text[]) THEN %(status)s ELSE r.status END,
        started_at = CASE WHEN %(started)s THEN COALESCE(r.started_at, %(now)s)
            ELSE r.started_at END,
        stages = CASE WHEN active.edge THEN jsonb_set(r.stages, ARRAY[%(stage)s::text],
            COALESCE(r.stages -> %(stage)s::text, '{}'::jsonb)
                || jsonb_build_object(%(field)s::text, %(at)s::text))
            ELSE r.stages END
    FROM active
    WHERE r.id = active.id AND EXISTS (SELECT 1 FROM claimed)
    RETURNING r.next_event_seq - 1 AS seq, active.edge
), started AS (
    INSERT INTO pipeline_event (run_id, seq, type, payload, at)
    SELECT %(run)s, counter.seq, 'step.started', jsonb_build_object(
        'step_id', claimed.id, 'key', %(key)s::text, 'role', %(role)s::text,
        'task', %(task)s::jsonb, 'round', claimed.round, 'attempt', claimed.attempt
    ), clock_timestamp()
    FROM counter, claimed
    UNION ALL
    SELECT %(run)s, counter.seq - 1, %(edge_type)s, %(edge_payload)s::jsonb, clock_timestamp()
    FROM counter WHERE counter.edge
    RETURNING id, seq, type, payload, at
)
SELECT claimed.id, claimed.created, claimed.round, claimed.attempt,
    started.id, started.seq, started.type, started.payload, started.at
FROM claimed LEFT JOIN started ON true
"""


# Store the output and publish the step's events, ``step.completed`` last (built from the
# stored usage), in one statement: both happen, or neither. With ``paid``, the statement also
# stores the step's last answer (held by its ledger: ``StepLedger.hold_last``) as
# ``RECORD_USAGE`` would, so the answer, its usage, the spend ledger's row and the output land
# together; only if the step is still running (else the answer is stored on its own). The
# step's row is locked first, then the run's, as ``RECORD_USAGE`` does. A plan task's outcome
# that follows from the output (a tester's verdict) is stored by the same statement.
def store_sql(*, paid: bool) -> str:
    usage = (
        """,
        tokens_in = tokens_in + %(tokens_in)s, tokens_out = tokens_out + %(tokens_out)s,
        cost_usd = cost_usd + %(cost)s, latency_ms = latency_ms + %(latency)s,
        llm_calls = llm_calls + 1, provider = %(provider)s, model = %(model)s"""
        if paid
        else ""
    )
    run_usage = (
        """
        tokens_in = tokens_in + %(tokens_in)s, tokens_out = tokens_out + %(tokens_out)s,
        cost_usd = cost_usd + %(cost)s,"""
        if paid
        else ""
    )
    call = STEPCALL_CTE.replace("{source}", "done") if paid else ""
    spend = ", " + spend_ctes(gate="EXISTS (SELECT 1 FROM done)") if paid else ""  # noqa: S608
    paid_columns = (
        "(SELECT ordinal FROM call), (SELECT cost_usd FROM counter), "
        "(SELECT budget_warned FROM counter)"
        if paid
        else "NULL, NULL, NULL"
    )
    return (
        "WITH "  # noqa: S608
        + (CLOCK + ", " if paid else "")
        + """done AS (
    UPDATE pipeline_step SET status = 'succeeded', output = %(output)s::jsonb,
        finished_at = %(now)s"""
        + usage
        + """
    WHERE id = %(step)s AND status = 'running'
    RETURNING id, provider, model, tokens_in, tokens_out, cost_usd, latency_ms"""
        + call
        + """
), items AS (
    SELECT item.n, item.type, item.payload
    FROM jsonb_to_recordset(%(events)s::jsonb) AS item(n int, type text, payload jsonb)
    WHERE EXISTS (SELECT 1 FROM done)
    UNION ALL
    SELECT %(last)s, 'step.completed', %(ref)s::jsonb || jsonb_build_object(
        'provider', provider, 'model', model, 'tokens_in', tokens_in,
        'tokens_out', tokens_out, 'cost_usd', cost_usd::text, 'latency_ms', latency_ms
    ) || %(extra)s::jsonb
    FROM done
), counter AS (
    UPDATE pipeline_run SET"""
        + run_usage
        + """
        next_event_seq = next_event_seq + CASE WHEN status IN ('completed', 'failed', 'cancelled')
            THEN 0 ELSE (SELECT count(*) FROM items) END,
        heartbeat_at = clock_timestamp(), stored_by = %(worker)s
    WHERE id = %(run)s AND EXISTS (SELECT 1 FROM done)
    RETURNING next_event_seq - (SELECT count(*) FROM items) AS first,
        status NOT IN ('completed', 'failed', 'cancelled') AS open, cost_usd, budget_warned
), stored AS (
    INSERT INTO pipeline_event (run_id, seq, type, payload, at)
    SELECT %(run)s, counter.first + items.n, items.type, items.payload, clock_timestamp()
    FROM counter, items
    WHERE counter.open
    RETURNING id, seq, type, payload, at
), task AS (
    UPDATE pipeline_plantask SET status = %(task_status)s, result = %(task_result)s::jsonb
    WHERE id = %(task_id)s::bigint AND EXISTS (SELECT 1 FROM done)
    RETURNING id
)"""
        + spend
        + """
SELECT (SELECT count(*) FROM done), """
        + paid_columns
        + """, id, seq, type, payload, at
FROM (SELECT 1) AS one LEFT JOIN stored ON true
"""
    )


# Sent compact: psycopg parses a statement over 4,096 bytes again on every execution.
CLAIM = compact_sql(CLAIM)
STORE = compact_sql(store_sql(paid=False))
STORE_PAID = compact_sql(store_sql(paid=True))
