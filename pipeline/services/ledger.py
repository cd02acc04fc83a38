"""A step's ledger: every paid answer stored with its usage the moment it returns.

``StepLedger`` is what ``providers.services.complete`` sees of a step (its ``UsageLedger``):
before a call it reserves the call's worst case against the user's daily cap and checks the
run's budget, in one statement (``_RESERVE``); it stores each answer, its usage, the spend
ledger's row and the settlement of the reservation in one statement (``_RECORD_USAGE``); and
it hands a step taken over (or retried) the answers it already paid for, in order, so only a
call cut off before its answer is ever made again. Storing an answer survives a lost
database connection: the statement is tried again on a fresh connection, since the answer
exists nowhere else.

The spend ledger (``spending.SpendEntry``) keeps every paid call with its user, project and
run (ids and names copied), so deleting a project or a run gives no dollar back; the user's
``spending.SpendWindow`` row is what the daily cap is reserved against (see ``spending.sql``).
"""

from __future__ import annotations

import json
import uuid
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import connection, transaction

from common.logging import get_logger
from providers.types import Completion, Reservation
from spending.models import SpendEntry
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

from ..faults import fault_point
from ..models import Run, StepCall
from ..selectors import user_spent_last_day_usd
from ..transient import retry_transient
from .runs import emit

logger = get_logger(__name__)


def release_connection() -> None:
    """Give this thread's database connection back before a long wait (a model call)."""
    if not connection.in_atomic_block:
        connection.close()


# The spend ledger's row of a paid call and the settlement of its reservation, as CTEs after
# ``clock`` (``gate``: a condition for recording it at all). Shared by ``_RECORD_USAGE`` and
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
# any a concurrent holder stored. The call of ``_RECORD_USAGE`` and the last answer stored by
# a step's store (``steps._store_sql``) are this one insert.
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
_RECORD_USAGE = (
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
_RESERVE = (
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
_RELEASE = """
UPDATE spending_spendwindow SET reservations = reservations - %(key)s::text,
    updated_at = statement_timestamp()
WHERE user_id = %(user)s AND reservations ? %(key)s::text
"""

# Give back whatever an earlier holder of the step reserved (it died, or handed the step back).
_RELEASE_STEP = (
    "UPDATE spending_spendwindow AS w SET reservations = "  # noqa: S608
    + held_without_step("w.reservations", "%(step)s::bigint")
    + ", updated_at = statement_timestamp() WHERE w.user_id = %(user)s AND "
    + held_for_step("w.reservations", "%(step)s::bigint")
)

_RECORD_CALL_AGAIN = """
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


class StepLedger:
    """The ``UsageLedger`` of one step: each answer and its usage land in one transaction.

    Every paid call is stored as a ``StepCall`` (answer, parsed output, usage) together
    with the step's and the run's usage, the moment it returns. A step taken over after
    its worker died starts with its stored calls (``stored``) and ``replay`` hands them
    back in order, so only a call cut off before its answer is ever made again.
    """

    def __init__(
        self,
        *,
        run_id: int,
        step_id: int,
        step_key: str,
        budget_usd: Decimal | None,
        stored: list[StepCall] | None = None,
        next_ordinal: int = 0,
        user_id: int | None = None,
        project_id: int | None = None,
        role: str = "",
    ):
        self.run_id: int | None = run_id  # the UsageLedger protocol's attribute
        self.user_id = user_id  # the run's user: their daily budget, their circuits
        self.project_id = project_id
        self.role = role
        self._run_id = run_id
        self.step_id = step_id
        self.step_key = step_key
        self.budget_usd = budget_usd
        self._stored = list(stored or [])
        self._next_ordinal = next_ordinal
        # The ordinal of an attempt to store an answer that may or may not have landed.
        self._attempted_ordinal: int | None = None
        # The reservation held for the call in flight (its key in the user's spend window).
        self._reservation: str | None = None
        # With ``hold_last`` set, a paid answer is held (as its ``_RECORD_USAGE`` parameters)
        # for the step's store to carry with the output, instead of being stored at once; any
        # other use of the ledger (another call above all) stores it on its own first.
        self.hold_last = False
        self._held: dict[str, Any] | None = None

    def remaining_budget_usd(self) -> Decimal | None:
        self.flush()
        if self.budget_usd is None:
            return None
        try:
            spent = retry_transient(
                lambda: Run.objects.values_list("cost_usd", flat=True).get(id=self._run_id),
                what="step.remaining_budget",
            )
        finally:
            release_connection()
        return self.budget_usd - spent

    def user_spent_last_day_usd(self) -> Decimal | None:
        self.flush()
        if self.user_id is None:
            return None
        user_id = self.user_id
        try:
            return retry_transient(
                lambda: user_spent_last_day_usd(user_id=user_id), what="step.user_spent"
            )
        finally:
            release_connection()

    def reserve(self, *, amount_usd: Decimal, daily_cap_usd: Decimal | None) -> Reservation:
        """Hold ``amount_usd`` (a call's worst case) against the user's daily cap and check
        the run's budget, in one statement; the reservation this ledger held goes back.

        Granted, the amount stays held until ``record_usage`` settles it with the real cost,
        ``release`` gives it back, or it expires (``LLM_RESERVATION_SECONDS``) because the
        call's holder died; a step taken over gives back what its dead holder reserved.

        A call that cannot cost anything (a free model) holds nothing and spends nothing, so
        unless an earlier reservation of this ledger is to be given back, it sends nothing.
        """
        self.flush()
        if amount_usd <= 0 and self._reservation is None:
            return Reservation(granted=True, daily_left_usd=None, run_left_usd=None)
        key = uuid.uuid4().hex
        params: dict[str, Any] = {
            "key": key,
            "previous": self._reservation or "",
            "user": self.user_id,
            "run": self._run_id,
            "step": self.step_id,
            "amount": amount_usd,
            "cap": daily_cap_usd,
            "ttl": int(settings.LLM_RESERVATION_SECONDS),
        }

        def reserve() -> tuple[Any, ...]:
            with connection.cursor() as cursor:
                cursor.execute(_RESERVE, params)
                return tuple(cursor.fetchone())

        try:
            granted, spent, held, run_ok, run_left = retry_transient(reserve, what="step.reserve")
        finally:
            release_connection()
        if granted is None:  # no user, so no daily cap: the run's budget alone decides
            granted = bool(run_ok)
        self._reservation = key if granted and self.user_id is not None else None
        daily_left = None
        if daily_cap_usd is not None and spent is not None:
            before = held - amount_usd if granted else held
            daily_left = daily_cap_usd - spent - before
        logger.info(
            "step.reserved" if granted else "step.reservation_refused",
            run_id=self._run_id,
            step=self.step_key,
            amount_usd=str(amount_usd),
            daily_left_usd=str(daily_left) if daily_left is not None else None,
        )
        return Reservation(granted=bool(granted), daily_left_usd=daily_left, run_left_usd=run_left)

    def release(self) -> None:
        """Give back the reservation of a call that got no answer."""
        self.flush()
        key, self._reservation = self._reservation, None
        if key is None or self.user_id is None:
            return
        try:
            with connection.cursor() as cursor:
                cursor.execute(_RELEASE, {"key": key, "user": self.user_id})
        finally:
            release_connection()

    def release_earlier_holders(self) -> None:
        """Give back what an earlier holder of this step reserved and never settled.

        A step is claimed anew only once its holder is gone (it died, failed or handed the
        step back), so a reservation left for the step is a dead call's: the run's resumed
        step need not wait for it to expire.
        """
        if self.user_id is None:
            return
        with connection.cursor() as cursor:
            cursor.execute(_RELEASE_STEP, {"step": self.step_id, "user": self.user_id})
            if cursor.rowcount:
                logger.warning("step.reservations_released", step=self.step_key)

    def replay(self) -> Completion | None:
        """The next answer this step already paid for (in call order), or None."""
        self.flush()
        if not self._stored:
            return None
        call = self._stored.pop(0)
        logger.info(
            "step.call_replayed", run_id=self._run_id, step=self.step_key, call=call.ordinal
        )
        return Completion(
            text=call.text,
            parsed=None,
            tokens_in=call.tokens_in,
            tokens_out=call.tokens_out,
            cost_usd=call.cost_usd,
            model=call.model,
            provider=call.provider,
            latency_ms=call.latency_ms,
            attempts=0,
            replayed=True,
        )

    def usage_params(self, completion: Completion) -> dict[str, Any]:
        """The parameters of ``_RECORD_USAGE`` for one paid answer (one ``call_key`` each)."""
        parsed = completion.parsed.model_dump(mode="json") if completion.parsed else None
        return {
            "step": self.step_id,
            "run": self._run_id,
            "ordinal": self._next_ordinal,
            "provider": completion.provider,
            "model": completion.model,
            "text": completion.text,
            "parsed": json.dumps(parsed) if parsed is not None else None,
            "tokens_in": completion.tokens_in,
            "tokens_out": completion.tokens_out,
            "cost": completion.cost_usd,
            "latency": completion.latency_ms,
            "user": self.user_id,
            "project": self.project_id,
            "step_key": self.step_key,
            "role": self.role,
            "reservation": self._reservation or "",
            "call_key": uuid.uuid4(),
        }

    def record_usage(self, completion: Completion) -> None:
        """Store a paid answer with its usage now, or hold it for the step's store (see
        ``hold_last``); an answer held before is stored on its own first."""
        self.flush()
        params = self.usage_params(completion)
        self._reservation = None  # the answer's parameters settle it
        if self.hold_last:
            self._held = params
            fault_point("answer_held", step_key=self.step_key)
            return
        self._record(params)

    def flush(self) -> None:
        """Store the held answer on its own now: another call follows, or the step will not
        store its output (it failed, or lost its connection)."""
        params, self._held = self._held, None
        if params is not None:
            self._record(params)

    def take_held(self) -> dict[str, Any] | None:
        """The held answer's parameters, for the step's store to carry (None: none held).

        The store may land or not: should it fail, ``record_held`` stores the answer on its
        own, first looking for it in case the store landed after all."""
        params, self._held = self._held, None
        if params is not None:
            self._attempted_ordinal = params["ordinal"]
        return params

    def record_held(self, params: dict[str, Any]) -> None:
        """Store a taken answer on its own (the step's store did not carry it)."""
        self._record(params)

    def held_stored(
        self, params: dict[str, Any], *, ordinal: int | None, cost: Decimal, warned: bool
    ) -> None:
        """The step's store carried the taken answer ``params`` with the step's output;
        ``ordinal`` None means another holder stored that ordinal at the same instant."""
        try:
            if ordinal is None:
                logger.warning("step.call_ordinal_taken", step=self.step_key)
                with connection.cursor() as cursor:
                    cursor.execute(_RECORD_CALL_AGAIN, params)
                    ordinal = cursor.fetchone()[0]
            self._answer_stored(ordinal, cost, warned)
        finally:
            release_connection()
        fault_point("answer_stored", step_key=self.step_key)

    def _record(self, params: dict[str, Any]) -> None:
        try:
            ordinal, cost, warned = retry_transient(
                lambda: self._store(params),
                what="step.record_usage",
                attempts=10,
            )
            self._answer_stored(ordinal, cost, warned)
        finally:
            release_connection()
        fault_point("answer_stored", step_key=self.step_key)

    def _answer_stored(self, ordinal: int | None, cost: Decimal, warned: bool) -> None:
        self._attempted_ordinal = None
        if ordinal is None:  # the step is gone (its run was deleted): the spend is kept
            logger.warning("step.call_stored_without_step", step=self.step_key)
            return
        self._next_ordinal = ordinal + 1
        budget = self.budget_usd
        if budget is not None and budget > 0 and not warned and cost >= budget * Decimal("0.8"):
            self._warn_budget()

    def _store(self, params: dict[str, Any]) -> tuple[int | None, Decimal, bool]:
        """Store one answer with its usage: ``(ordinal, run's cost, budget warned)``; the
        ordinal is None when the step no longer exists (only the spend was recorded).

        Tried again after a lost connection: an attempt whose commit was lost with its
        connection may still have landed, so a retry first looks for the answer it stored.
        """
        if self._attempted_ordinal is not None:
            landed = self._landed(params)
            if landed is not None:
                return landed
        self._attempted_ordinal = params["ordinal"]
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(_RECORD_USAGE, params)
            ordinal, cost, warned, stepped = cursor.fetchone()
            if not stepped:
                return None, Decimal(0), True
            if ordinal is None:  # another holder stored this ordinal at the same moment
                logger.warning("step.call_ordinal_taken", step=self.step_key)
                cursor.execute(_RECORD_CALL_AGAIN, params)
                ordinal = cursor.fetchone()[0]
        return ordinal, cost, warned

    def _landed(self, params: dict[str, Any]) -> tuple[int | None, Decimal, bool] | None:
        """The answer an earlier attempt stored after all, if it did."""
        if not SpendEntry.objects.filter(call_key=params["call_key"]).exists():
            return None
        ordinal = (
            StepCall.objects.filter(
                step_id=self.step_id,
                ordinal__gte=params["ordinal"],
                retired=False,
                text=params["text"],
                tokens_in=params["tokens_in"],
                tokens_out=params["tokens_out"],
            )
            .values_list("ordinal", flat=True)
            .first()
        )
        run = Run.objects.filter(id=self._run_id).values_list("cost_usd", "budget_warned").first()
        if ordinal is None or run is None:  # the step went with its run: only the spend landed
            return None, Decimal(0), True
        return ordinal, run[0], run[1]

    def _warn_budget(self) -> None:
        if self.budget_usd is None or self.budget_usd <= 0:
            return
        threshold = self.budget_usd * Decimal("0.8")
        warned = Run.objects.filter(
            id=self._run_id, budget_warned=False, cost_usd__gte=threshold
        ).update(budget_warned=True)
        if warned:
            spent = Run.objects.values_list("cost_usd", flat=True).get(id=self._run_id)
            emit(
                run_id=self._run_id,
                type="budget.warning",
                payload={"budget_usd": str(self.budget_usd), "cost_usd": str(spent)},
            )

    def failover(self, info: dict[str, Any]) -> None:
        self.flush()
        try:
            emit(
                run_id=self._run_id,
                type="provider.failover",
                # The vendor's error text ("detail") stays in the logs.
                payload={
                    "step": self.step_key,
                    **{k: str(v) for k, v in info.items() if k != "detail"},
                },
            )
        finally:
            release_connection()
