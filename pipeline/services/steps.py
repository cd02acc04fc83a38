"""Running one step durably: claim it, call the model without holding a connection, store it.

Every agent action is a ``Step`` row keyed ``(run, key)``. ``step_run`` makes re-delivery
and resume free: a succeeded step returns its stored output (no model call), a step another
live worker holds makes the caller wait (``StepBusy``), and a step whose worker died (stale
heartbeat) is taken over. While the model works the step's heartbeat is touched from a side
thread that borrows a connection only for the moment of each update.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import IntegrityError, connection, connections, transaction
from django.db.models import F
from django.utils import timezone
from pydantic import BaseModel

from common.logging import get_logger
from providers.types import Completion

from ..failures import failure_for
from ..faults import fault_point
from ..models import Run, Step, StepCall
from ..roles import Prompt
from .runs import RunStopped, emit, run_check_bounds, run_touch

logger = get_logger(__name__)


class StepBusy(Exception):
    """Another live worker holds the step; look again later."""

    def __init__(self, step_key: str):
        super().__init__(f"step {step_key} is running elsewhere")
        self.step_key = step_key


@dataclass
class StepSpec:
    """What identifies a step and what is shown of it."""

    role: str
    key: str
    round: int = 0
    attempt: int = 1
    plan_task_id: int | None = None
    input: dict[str, Any] = field(default_factory=dict)


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
    ):
        self.run_id: int | None = run_id  # the UsageLedger protocol's attribute
        self._run_id = run_id
        self.step_id = step_id
        self.step_key = step_key
        self.budget_usd = budget_usd
        self._stored = list(stored or [])
        self._next_ordinal = next_ordinal

    def remaining_budget_usd(self) -> Decimal | None:
        if self.budget_usd is None:
            return None
        try:
            spent = Run.objects.values_list("cost_usd", flat=True).get(id=self._run_id)
        finally:
            release_connection()
        return self.budget_usd - spent

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
        try:
            with transaction.atomic():
                # The step's row lock (taken by this update) orders the calls of one step.
                Step.objects.filter(id=self.step_id).update(
                    tokens_in=F("tokens_in") + completion.tokens_in,
                    tokens_out=F("tokens_out") + completion.tokens_out,
                    cost_usd=F("cost_usd") + completion.cost_usd,
                    latency_ms=F("latency_ms") + completion.latency_ms,
                    llm_calls=F("llm_calls") + 1,
                    provider=completion.provider,
                    model=completion.model,
                )
                ordinal = self._next_ordinal
                if StepCall.objects.filter(step_id=self.step_id, ordinal=ordinal).exists():
                    # Another holder stored one meanwhile (it was wrongly thought dead).
                    ordinal = 1 + max(
                        StepCall.objects.filter(step_id=self.step_id).values_list(
                            "ordinal", flat=True
                        )
                    )
                StepCall.objects.create(
                    step_id=self.step_id,
                    ordinal=ordinal,
                    provider=completion.provider,
                    model=completion.model,
                    text=completion.text,
                    parsed=parsed,
                    tokens_in=completion.tokens_in,
                    tokens_out=completion.tokens_out,
                    cost_usd=completion.cost_usd,
                    latency_ms=completion.latency_ms,
                )
                self._next_ordinal = ordinal + 1
                Run.objects.filter(id=self._run_id).update(
                    tokens_in=F("tokens_in") + completion.tokens_in,
                    tokens_out=F("tokens_out") + completion.tokens_out,
                    cost_usd=F("cost_usd") + completion.cost_usd,
                    heartbeat_at=timezone.now(),
                )
                self._warn_budget()
        finally:
            release_connection()
        fault_point("answer_stored", step_key=self.step_key)

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


class _Heartbeats:
    """One thread per process touches the heartbeat of every step the process holds.

    Every PIPELINE_HEARTBEAT_SECONDS it updates all held steps and their runs in two
    statements, borrowing a connection only for that moment, whatever the number of
    steps in flight (hundreds of model calls cost two queries a beat, not hundreds). It
    runs beside the model calls, so a step in a call of any length stays fresh.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._held: dict[int, int] = {}  # step id -> run id
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._pid = 0

    def add(self, step_id: int, run_id: int) -> None:
        with self._lock:
            self._held[step_id] = run_id
            if self._thread is None or not self._thread.is_alive() or self._pid != os.getpid():
                self._pid = os.getpid()  # a forked child needs its own thread
                self._thread = threading.Thread(
                    target=self._loop, name="pipeline-heartbeat", daemon=True
                )
                self._thread.start()
        self._wake.set()  # the interval may have changed

    def remove(self, step_id: int) -> None:
        with self._lock:
            self._held.pop(step_id, None)

    def _loop(self) -> None:
        due = time.monotonic() + float(settings.PIPELINE_HEARTBEAT_SECONDS)
        while True:
            interval = float(settings.PIPELINE_HEARTBEAT_SECONDS)
            due = min(due, time.monotonic() + interval)
            if self._wake.wait(max(due - time.monotonic(), 0)):
                self._wake.clear()
                continue
            due = time.monotonic() + interval
            with self._lock:
                held = dict(self._held)
            if held:
                self._beat(held)

    @staticmethod
    def _beat(held: dict[int, int]) -> None:
        try:
            now = timezone.now()
            Step.objects.filter(id__in=list(held), status=Step.Status.RUNNING).update(
                heartbeat_at=now
            )
            Run.objects.filter(id__in=set(held.values())).update(heartbeat_at=now)
        except Exception:
            logger.warning("step.heartbeat_failed", steps=len(held), exc_info=True)
        finally:
            connections.close_all()  # this thread's connections only


_heartbeats = _Heartbeats()


@contextmanager
def heartbeat(*, step_id: int, run_id: int) -> Iterator[None]:
    """Keep the step's and its run's heartbeat fresh meanwhile (see ``_Heartbeats``)."""
    _heartbeats.add(step_id, run_id)
    try:
        yield
    finally:
        _heartbeats.remove(step_id)


def _stale_before() -> Any:
    return timezone.now() - timedelta(seconds=float(settings.PIPELINE_STALE_SECONDS))


def _step_get_or_create(run_id: int, spec: StepSpec) -> tuple[Step, bool]:
    defaults = {
        "role": spec.role,
        "round": spec.round,
        "attempt": spec.attempt,
        "plan_task_id": spec.plan_task_id,
        "input": spec.input,
    }
    try:
        with transaction.atomic():
            return Step.objects.get_or_create(run_id=run_id, key=spec.key, defaults=defaults)
    except IntegrityError:
        return Step.objects.get(run_id=run_id, key=spec.key), False


def _claim(step: Step) -> bool:
    """Take the step: PENDING -> RUNNING, only while its run is still active."""
    now = timezone.now()
    return bool(
        Step.objects.filter(id=step.id, status=Step.Status.PENDING)
        .filter(run__status__in=Run.ACTIVE)
        .update(status=Step.Status.RUNNING, started_at=now, heartbeat_at=now, error="")
    )


def _step_ref(step: Step, spec: StepSpec | None = None) -> dict[str, Any]:
    """The fields every step event starts with."""
    ref: dict[str, Any] = {"step_id": step.id, "key": step.key, "role": step.role}
    if spec is not None:
        ref["task"] = spec.input.get("task")
    return ref


def step_run(
    *,
    run_id: int,
    spec: StepSpec,
    prepare: Callable[[Run, Step], Any],
    execute: Callable[[Any, StepLedger], dict[str, Any]],
    on_success: Callable[[Step, dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Run one step once, whatever happens to the message that asked for it.

    ``prepare`` reads what the step needs (with a connection), ``execute`` calls the model
    and/or the sandbox (without one), ``on_success`` writes what follows from the output
    in the same transaction that stores it (events, plan rows). Returns the stored output.
    Raises ``RunStopped`` when the run is no longer active, ``StepBusy`` when another live
    worker holds the step, and the model's error (after marking the step failed).
    """
    run = run_check_bounds(run_id=run_id)
    step, created = _step_get_or_create(run_id, spec)
    if step.status == Step.Status.SUCCEEDED:
        return step.output or {}
    if not _claim(step):
        step.refresh_from_db()
        if step.status == Step.Status.SUCCEEDED:
            return step.output or {}
        if step.status == Step.Status.RUNNING:
            stale = step.heartbeat_at is None or step.heartbeat_at < _stale_before()
            taken_over = (
                stale
                and Step.objects.filter(
                    id=step.id, status=Step.Status.RUNNING, heartbeat_at=step.heartbeat_at
                ).update(status=Step.Status.PENDING)
                and _claim(step)
            )
            if not taken_over:
                raise StepBusy(spec.key)
            logger.warning("step.taken_over", run_id=run_id, step=spec.key)
        else:
            raise RunStopped(run_id)
    step.refresh_from_db()
    run_touch(run_id=run_id)
    emit(
        run_id=run_id,
        type="step.started",
        payload={
            **_step_ref(step, spec),
            "round": step.round,
            "attempt": step.attempt,
        },
    )
    try:
        ledger = _ledger_for(run, step, created=created)
        prepared = prepare(run, step)
        release_connection()
        with heartbeat(step_id=step.id, run_id=run_id):
            output = execute(prepared, ledger)
    except Exception as exc:
        _step_fail(step, exc)
        raise
    with transaction.atomic():
        stored = Step.objects.filter(id=step.id, status=Step.Status.RUNNING).update(
            status=Step.Status.SUCCEEDED, output=output, finished_at=timezone.now()
        )
        step.refresh_from_db()
        if stored:
            if on_success is not None:
                on_success(step, output)
            emit(
                run_id=run_id,
                type="step.completed",
                payload={
                    **_step_ref(step, spec),
                    "provider": step.provider,
                    "model": step.model,
                    "tokens_in": step.tokens_in,
                    "tokens_out": step.tokens_out,
                    "cost_usd": str(step.cost_usd),
                    "latency_ms": step.latency_ms,
                    # "sandbox", or "static review" when the tester fell back to a review.
                    **({"mode": output["mode"]} if output.get("mode") else {}),
                },
            )
        run_touch(run_id=run_id)
    if step.status == Step.Status.SUCCEEDED and step.output is not None:
        return step.output
    return output


def _ledger_for(run: Run, step: Step, *, created: bool) -> StepLedger:
    """The step's ledger; a step that existed before may hold answers already paid for."""
    calls: list[StepCall] = []
    if not created:
        calls = list(StepCall.objects.filter(step_id=step.id).order_by("ordinal"))
    return StepLedger(
        run_id=run.id,
        step_id=step.id,
        step_key=step.key,
        budget_usd=run.budget_usd,
        stored=[call for call in calls if not call.retired],
        next_ordinal=calls[-1].ordinal + 1 if calls else 0,
    )


def _step_fail(step: Step, exc: BaseException) -> None:
    code, reason = failure_for(exc)
    with transaction.atomic():
        Step.objects.filter(id=step.id, status=Step.Status.RUNNING).update(
            status=Step.Status.FAILED, error=reason[:4000], finished_at=timezone.now()
        )
        # Running the step again (retry, resume) means asking anew, not replaying this.
        StepCall.objects.filter(step_id=step.id).update(retired=True)
        emit(
            run_id=step.run_id,
            type="step.failed",
            payload={**_step_ref(step), "reason": code, "detail": reason},
        )
    logger.warning("step.failed", run_id=step.run_id, step=step.key, reason=code)


def model_call(
    *, prompt: Prompt, context: dict[str, Any], ledger: StepLedger, chain: list[str] | None
) -> BaseModel:
    """Ask ``prompt.role``'s model chain; the validated answer (``complete`` repairs once)."""
    from providers.services import complete

    completion = complete(
        role=prompt.role,
        messages=prompt.messages(context),
        schema=prompt.schema,
        run=ledger,
        chain=chain,
    )
    parsed = completion.parsed
    if parsed is None:
        parsed = prompt.schema.model_validate_json(completion.text)
    return parsed
