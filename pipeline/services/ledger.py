"""A step's ledger: every paid answer stored with its usage the moment it returns.

``StepLedger`` is what ``providers.services.complete`` sees of a step (its ``UsageLedger``):
before a call it reserves the call's worst case against the user's daily cap and checks the
run's budget, in one statement (``RESERVE``); it stores each answer, its usage, the spend
ledger's row and the settlement of the reservation in one statement (``RECORD_USAGE``); and
it hands a step taken over (or retried) the answers it already paid for, in order, so only a
call cut off before its answer is ever made again. Storing an answer survives a lost
database connection: the statement is tried again on a fresh connection, since the answer
exists nowhere else. A step's last answer, held for the step's store, is also kept in Redis
from its arrival (``answer_stash``): a worker killed before that store costs no call again.

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

from common.db import prepared_cursor
from common.logging import get_logger
from providers.types import Completion, Reservation
from spending.models import SpendEntry

from ..faults import fault_point
from ..models import Run, StepCall
from ..selectors import user_spent_last_day_usd
from ..transient import retry_transient
from .answer_stash import answer_stash, answer_unstash
from .ledger_sql import (
    RECORD_CALL_AGAIN,
    RECORD_USAGE,
    RELEASE,
    RELEASE_STEP,
    RESERVE,
)
from .run_state import emit

logger = get_logger(__name__)


def release_connection() -> None:
    """Give this thread's database connection back before a long wait (a model call)."""
    if not connection.in_atomic_block:
        connection.close()


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
        # With ``hold_last`` set, a paid answer is held (as its ``RECORD_USAGE`` parameters)
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
            with prepared_cursor() as cursor:
                cursor.execute(RESERVE, params)
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
            with prepared_cursor() as cursor:
                cursor.execute(RELEASE, {"key": key, "user": self.user_id})
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
        with prepared_cursor() as cursor:
            cursor.execute(RELEASE_STEP, {"step": self.step_id, "user": self.user_id})
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
        """The parameters of ``RECORD_USAGE`` for one paid answer (one ``call_key`` each)."""
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
            answer_stash(params)  # a kill before the step's store then costs nothing again
            fault_point("answer_held", step_key=self.step_key)
            return
        self._record(params)

    def recover_stashed(self) -> None:
        """Store the last answer a dead holder of this step received and never stored
        (``answer_stash``), with its usage, and replay it first: it is not asked again."""
        params = answer_unstash(step_id=self.step_id, ordinal=self._next_ordinal)
        if params is None:
            return
        # The dead holder's reservation was given back (``release_earlier_holders``).
        self._record({**params, "reservation": ""})
        self._stored.append(
            StepCall(
                step_id=self.step_id,
                ordinal=params["ordinal"],
                provider=params["provider"],
                model=params["model"],
                text=params["text"],
                tokens_in=params["tokens_in"],
                tokens_out=params["tokens_out"],
                cost_usd=params["cost"],
                latency_ms=params["latency"],
            )
        )
        logger.warning("step.answer_recovered", step=self.step_key, call=params["ordinal"])

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
                with prepared_cursor() as cursor:
                    cursor.execute(RECORD_CALL_AGAIN, params)
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
        with transaction.atomic(), prepared_cursor() as cursor:
            cursor.execute(RECORD_USAGE, params)
            ordinal, cost, warned, stepped = cursor.fetchone()
            if not stepped:
                return None, Decimal(0), True
            if ordinal is None:  # another holder stored this ordinal at the same moment
                logger.warning("step.call_ordinal_taken", step=self.step_key)
                cursor.execute(RECORD_CALL_AGAIN, params)
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
