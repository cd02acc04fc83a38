"""A step's ledger: every paid answer stored with its usage the moment it returns.

``StepLedger`` is what ``providers.services.complete`` sees of a step (its ``UsageLedger``):
it checks the budgets before a call, stores each answer and its usage in one statement, and
hands a step taken over (or retried) the answers it already paid for, in order, so only a
call cut off before its answer is ever made again. Storing an answer survives a lost
database connection: the statement is tried again on a fresh connection, since the answer
exists nowhere else.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

from django.db import connection, transaction

from common.logging import get_logger
from providers.types import Completion

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


# A paid call, in one statement: the step's and the run's usage and the stored answer land
# together (or not at all). The ordinal is the ledger's next one, or past any a concurrent
# holder stored; a clash with one stored at the same instant leaves ``ordinal`` NULL.
_RECORD_USAGE = """
WITH step AS (
    UPDATE pipeline_step
    SET tokens_in = tokens_in + %(tokens_in)s, tokens_out = tokens_out + %(tokens_out)s,
        cost_usd = cost_usd + %(cost)s, latency_ms = latency_ms + %(latency)s,
        llm_calls = llm_calls + 1, provider = %(provider)s, model = %(model)s
    WHERE id = %(step)s
    RETURNING id
), call AS (
    INSERT INTO pipeline_stepcall (
        step_id, ordinal, provider, model, text, parsed, tokens_in, tokens_out, cost_usd,
        latency_ms, retired, created_at
    )
    SELECT id, GREATEST(%(ordinal)s, COALESCE(
            (SELECT max(ordinal) + 1 FROM pipeline_stepcall WHERE step_id = %(step)s), 0)),
        %(provider)s, %(model)s, %(text)s, %(parsed)s::jsonb, %(tokens_in)s, %(tokens_out)s,
        %(cost)s, %(latency)s, false, clock_timestamp()
    FROM step
    ON CONFLICT (step_id, ordinal) DO NOTHING
    RETURNING ordinal
), run AS (
    UPDATE pipeline_run
    SET tokens_in = tokens_in + %(tokens_in)s, tokens_out = tokens_out + %(tokens_out)s,
        cost_usd = cost_usd + %(cost)s, heartbeat_at = clock_timestamp()
    WHERE id = %(run)s
    RETURNING cost_usd, budget_warned
)
SELECT (SELECT ordinal FROM call), cost_usd, budget_warned FROM run
"""

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
    ):
        self.run_id: int | None = run_id  # the UsageLedger protocol's attribute
        self.user_id = user_id  # the run's user: their daily budget, their circuits
        self._run_id = run_id
        self.step_id = step_id
        self.step_key = step_key
        self.budget_usd = budget_usd
        self._stored = list(stored or [])
        self._next_ordinal = next_ordinal
        # The ordinal of an attempt to store an answer that may or may not have landed.
        self._attempted_ordinal: int | None = None

    def remaining_budget_usd(self) -> Decimal | None:
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
        if self.user_id is None:
            return None
        user_id = self.user_id
        try:
            return retry_transient(
                lambda: user_spent_last_day_usd(user_id=user_id), what="step.user_spent"
            )
        finally:
            release_connection()

    def replay(self) -> Completion | None:
        """The next answer this step already paid for (in call order), or None."""
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

    def record_usage(self, completion: Completion) -> None:
        parsed = completion.parsed.model_dump(mode="json") if completion.parsed else None
        params: dict[str, Any] = {
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
        }
        try:
            ordinal, cost, warned = retry_transient(
                lambda: self._store(params),
                what="step.record_usage",
                attempts=10,
            )
            self._next_ordinal = ordinal + 1
            self._attempted_ordinal = None
            budget = self.budget_usd
            if budget is not None and budget > 0 and not warned and cost >= budget * Decimal("0.8"):
                self._warn_budget()
        finally:
            release_connection()
        fault_point("answer_stored", step_key=self.step_key)

    def _store(self, params: dict[str, Any]) -> tuple[int, Decimal, bool]:
        """Store one answer with its usage: ``(ordinal, run's cost, budget warned)``.

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
            ordinal, cost, warned = cursor.fetchone()
            if ordinal is None:  # another holder stored this ordinal at the same moment
                logger.warning("step.call_ordinal_taken", step=self.step_key)
                cursor.execute(_RECORD_CALL_AGAIN, params)
                ordinal = cursor.fetchone()[0]
        return ordinal, cost, warned

    def _landed(self, params: dict[str, Any]) -> tuple[int, Decimal, bool] | None:
        """The answer an earlier attempt stored after all, if it did."""
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
        if ordinal is None:
            return None
        cost, warned = Run.objects.values_list("cost_usd", "budget_warned").get(id=self._run_id)
        return ordinal, cost, warned

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
