"""The SQL of a step's ledger (``ledger.StepLedger``) and of a step's store that carries its
last answer (``step_sql.store_sql``): each paid call's answer, usage, spend row and settlement
in one statement; a call's worst case reserved against the daily cap in one statement.
"""

from __future__ import annotations

from common.db import compact_sql
from spending.sql import (
    CLOCK,
    held_for_step,
    held_live,
    held_usd,
    held_without_step,
    window_add,
    window_pruned,
    window_usd,
)

# The spend ledger's row of a paid call and the settlement of its reservation, as CTEs after
# ``clock`` (``gate``: a condition for recording it at all). Shared by ``RECORD_USAGE`` and
# the step's store that carries its last answer (``pipeline.services.steps``).
_SPEND_CTES = (
    "entry AS ("  # noqa: S608
    + """
    INSERT INTO spending_spendentry (
        user_id, user_ref, user_email, project_id, project_ref, project_name, run_id, run_ref,
        step_key, role, provider, model, tokens_in, tokens_out, cost_usd, created_at, call_key
    )
    SELECT u.id, %(user)s, COALESCE(u.email, ''), p.id, %(project)s, COALESCE(p.name,
            (SELECT e.project_name FROM spending_spendentry AS e
             WHERE e.project_ref = %(project)s ORDER BY e.id DESC LIMIT 1), ''),
        r.id, %(run)s, %(step_key)s, %(role)s, %(provider)s, %(model)s, %(tokens_in)s,
        %(tokens_out)s, %(cost)s, clock_timestamp(), %(call_key)s
    FROM (SELECT 1) AS one
    LEFT JOIN accounts_user AS u ON u.id = %(user)s
    LEFT JOIN projects_project AS p ON p.id = %(project)s
    LEFT JOIN pipeline_run AS r ON r.id = %(run)s
    WHERE {gate}
    ON CONFLICT (call_key) DO NOTHING
    RETURNING id
), settled AS (
    INSERT INTO spending_spendwindow AS w (user_id, buckets, reservations, updated_at)
    SELECT u.id, jsonb_build_object((SELECT bucket FROM clock)::text, %(cost)s::numeric),
        '{}'::jsonb, statement_timestamp()
    FROM accounts_user AS u WHERE u.id = %(user)s AND EXISTS (SELECT 1 FROM entry)
    ON CONFLICT (user_id) DO UPDATE
    SET buckets = """
    + window_add("w.buckets", "%(cost)s::numeric")
    + """,
        reservations = w.reservations - %(reservation)s::text,
        updated_at = statement_timestamp()
    RETURNING 1
)"""
)


def spend_ctes(*, gate: str) -> str:
    """``_SPEND_CTES`` recording the call only where ``gate`` (an SQL condition) holds."""
    return _SPEND_CTES.replace("{gate}", gate)


# The CTE that stores a call's answer (``call``, returning its ordinal), from the row of
# ``{source}`` (a CTE returning the step's id): the ordinal is the ledger's next one, or past
# any a concurrent holder stored. The call of ``RECORD_USAGE`` and the last answer stored by
# a step's store (``step_sql.store_sql``) are this one insert.
STEPCALL_CTE = """
), call AS (
    INSERT INTO pipeline_stepcall (
        step_id, ordinal, provider, model, text, parsed, tokens_in, tokens_out, cost_usd,
        latency_ms, retired, created_at
    )
    SELECT id, GREATEST(%(ordinal)s, COALESCE(
            (SELECT max(ordinal) + 1 FROM pipeline_stepcall WHERE step_id = %(step)s), 0)),
        %(provider)s, %(model)s, %(text)s, %(parsed)s::jsonb, %(tokens_in)s, %(tokens_out)s,
        %(cost)s, %(latency)s, false, clock_timestamp()
    FROM {source}
    ON CONFLICT (step_id, ordinal) DO NOTHING
    RETURNING ordinal"""


# A paid call, in one statement: the step's and the run's usage, the stored answer, the spend
# ledger's row and the settlement of the call's reservation land together (or not at all).
# The ordinal is the ledger's next one, or past any a concurrent holder stored; a clash with
# one stored at the same instant leaves ``ordinal`` NULL. The spend is recorded even when the
# step, its run and its project were deleted meanwhile (their ids and names are copied), and
# only once per ``call_key``: an attempt tried again after a lost commit adds nothing.
RECORD_USAGE = (
    "WITH "  # noqa: S608
    + CLOCK
    + """, step AS (
    UPDATE pipeline_step
    SET tokens_in = tokens_in + %(tokens_in)s, tokens_out = tokens_out + %(tokens_out)s,
        cost_usd = cost_usd + %(cost)s, latency_ms = latency_ms + %(latency)s,
        llm_calls = llm_calls + 1, provider = %(provider)s, model = %(model)s
    WHERE id = %(step)s
    RETURNING id"""
    + STEPCALL_CTE.replace("{source}", "step")
    + """
), run AS (
    UPDATE pipeline_run
    SET tokens_in = tokens_in + %(tokens_in)s, tokens_out = tokens_out + %(tokens_out)s,
        cost_usd = cost_usd + %(cost)s, heartbeat_at = clock_timestamp()
    WHERE id = %(run)s
    RETURNING cost_usd, budget_warned
), """
    + spend_ctes(gate="true")
    + """
SELECT (SELECT ordinal FROM call), (SELECT cost_usd FROM run), (SELECT budget_warned FROM run),
    (SELECT count(*) FROM step)
"""
)

# A call's worst case, in one statement: held against the user's daily cap on their window
# row (what was spent in the last day plus what calls in flight may cost, read from that row
# as the last writer left it: see ``spending.sql``), and checked against the run's budget.
# The ledger's previous reservation (an earlier attempt, or another model of the chain) is
# given back in the same statement; expired reservations and old buckets are pruned.
_RESERVATION = (
    "jsonb_build_object(%(key)s::text, jsonb_build_object('usd', %(amount)s::numeric, "
    "'until', (SELECT now FROM clock) + %(ttl)s::numeric, 'run', %(run)s::bigint, "
    "'step', %(step)s::bigint))"
)
RESERVE = (
    "WITH "  # noqa: S608
    + CLOCK
    + """, run AS (
    SELECT budget_usd - cost_usd AS left_usd FROM pipeline_run WHERE id = %(run)s
), fits AS (
    SELECT COALESCE((SELECT left_usd FROM run) >= %(amount)s::numeric, true) AS run_ok
), gate AS (
    INSERT INTO spending_spendwindow AS w (user_id, buckets, reservations, updated_at)
    SELECT %(user)s, '{}'::jsonb, CASE
            WHEN fits.run_ok AND (%(cap)s::numeric IS NULL OR %(amount)s <= %(cap)s::numeric)
            THEN """
    + _RESERVATION
    + """ ELSE '{}'::jsonb END,
        statement_timestamp()
    FROM fits WHERE %(user)s::bigint IS NOT NULL
    ON CONFLICT (user_id) DO UPDATE
    SET buckets = """
    + window_pruned("w.buckets")
    + """,
        reservations = """
    + held_live("w.reservations", besides="%(previous)s")
    + """ || CASE
            WHEN (SELECT run_ok FROM fits) AND (%(cap)s::numeric IS NULL OR """
    + window_usd("w.buckets")
    + " + "
    + held_usd("w.reservations", besides="%(previous)s")
    + """ + %(amount)s::numeric <= %(cap)s::numeric)
            THEN """
    + _RESERVATION
    + """ ELSE '{}'::jsonb END,
        updated_at = statement_timestamp()
    RETURNING w.reservations ? %(key)s AS granted, """
    + window_usd("w.buckets")
    + " AS spent, "
    + held_usd("w.reservations")
    + """ AS held
)
SELECT (SELECT granted FROM gate), (SELECT spent FROM gate), (SELECT held FROM gate),
    (SELECT run_ok FROM fits), (SELECT left_usd FROM run)
"""
)

# Give back one reservation (the call got no answer).
RELEASE = """
UPDATE spending_spendwindow SET reservations = reservations - %(key)s::text,
    updated_at = statement_timestamp()
WHERE user_id = %(user)s AND reservations ? %(key)s::text
"""

# Give back whatever an earlier holder of the step reserved (it died, or handed the step back).
RELEASE_STEP = (
    "UPDATE spending_spendwindow AS w SET reservations = "  # noqa: S608
    + held_without_step("w.reservations", "%(step)s::bigint")
    + ", updated_at = statement_timestamp() WHERE w.user_id = %(user)s AND "
    + held_for_step("w.reservations", "%(step)s::bigint")
)

RECORD_CALL_AGAIN = """
INSERT INTO pipeline_stepcall (
    step_id, ordinal, provider, model, text, parsed, tokens_in, tokens_out, cost_usd,
    latency_ms, retired, created_at
)
SELECT %(step)s, COALESCE(max(ordinal) + 1, 0), %(provider)s, %(model)s, %(text)s,
    %(parsed)s::jsonb, %(tokens_in)s, %(tokens_out)s, %(cost)s, %(latency)s, false,
    clock_timestamp()
FROM pipeline_stepcall WHERE step_id = %(step)s
RETURNING ordinal
"""

# Sent compact, as the step's statements (``common.db.compact_sql``).
RECORD_USAGE = compact_sql(RECORD_USAGE)
RESERVE = compact_sql(RESERVE)
