"""Running one step durably: claim it, call the model without holding a connection, store it.

Every agent action is a ``Step`` row keyed ``(run, key)``. ``step_run`` makes re-delivery
and resume free: a succeeded step returns its stored output (no model call), a step another
live worker holds makes the caller wait (``StepBusy``), and a step whose worker died (stale
heartbeat) is taken over. While the model works the step's heartbeat is touched from a side
thread that borrows a connection only for the moment of each update.
"""

from __future__ import annotations

import threading
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

from ..models import Run, Step
from ..roles import Prompt
from ..selectors import user_spent_last_day_usd
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
    """The ``UsageLedger`` of one step: usage lands on the Step and its Run atomically."""

    def __init__(
        self,
        *,
        run_id: int,
        step_id: int,
        step_key: str,
        budget_usd: Decimal | None,
        user_id: int | None = None,
    ):
        self.run_id: int | None = run_id  # the UsageLedger protocol's attribute
        self.user_id = user_id  # the run's user: their daily budget, their circuits
        self._run_id = run_id
        self.step_id = step_id
        self.step_key = step_key
        self.budget_usd = budget_usd

    def remaining_budget_usd(self) -> Decimal | None:
        if self.budget_usd is None:
            return None
        try:
            spent = Run.objects.values_list("cost_usd", flat=True).get(id=self._run_id)
        finally:
            release_connection()
        return self.budget_usd - spent

    def user_spent_last_day_usd(self) -> Decimal | None:
        if self.user_id is None:
            return None
        try:
            return user_spent_last_day_usd(user_id=self.user_id)
        finally:
            release_connection()

    def record_usage(self, completion: Any) -> None:
        try:
            with transaction.atomic():
                Step.objects.filter(id=self.step_id).update(
                    tokens_in=F("tokens_in") + completion.tokens_in,
                    tokens_out=F("tokens_out") + completion.tokens_out,
                    cost_usd=F("cost_usd") + completion.cost_usd,
                    latency_ms=F("latency_ms") + completion.latency_ms,
                    llm_calls=F("llm_calls") + 1,
                    provider=completion.provider,
                    model=completion.model,
                )
                Run.objects.filter(id=self._run_id).update(
                    tokens_in=F("tokens_in") + completion.tokens_in,
                    tokens_out=F("tokens_out") + completion.tokens_out,
                    cost_usd=F("cost_usd") + completion.cost_usd,
                    heartbeat_at=timezone.now(),
                )
                self._warn_budget()
        finally:
            release_connection()

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
                payload={"step": self.step_key, **{k: str(v) for k, v in info.items()}},
            )
        finally:
            release_connection()


@contextmanager
def heartbeat(*, step_id: int, run_id: int) -> Iterator[None]:
    """Touch the step's and the run's heartbeat every PIPELINE_HEARTBEAT_SECONDS meanwhile."""
    stop = threading.Event()
    interval = float(settings.PIPELINE_HEARTBEAT_SECONDS)

    def beat() -> None:
        while not stop.wait(interval):
            try:
                now = timezone.now()
                Step.objects.filter(id=step_id, status=Step.Status.RUNNING).update(heartbeat_at=now)
                Run.objects.filter(id=run_id).update(heartbeat_at=now)
            except Exception:
                logger.warning("step.heartbeat_failed", step_id=step_id, exc_info=True)
            finally:
                connections.close_all()  # this thread's connections only

    thread = threading.Thread(target=beat, name=f"heartbeat-step-{step_id}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=interval + 5)


def _stale_before() -> Any:
    return timezone.now() - timedelta(seconds=float(settings.PIPELINE_STALE_SECONDS))


def _step_get_or_create(run_id: int, spec: StepSpec) -> Step:
    defaults = {
        "role": spec.role,
        "round": spec.round,
        "attempt": spec.attempt,
        "plan_task_id": spec.plan_task_id,
        "input": spec.input,
    }
    try:
        with transaction.atomic():
            step, _ = Step.objects.get_or_create(run_id=run_id, key=spec.key, defaults=defaults)
    except IntegrityError:
        step = Step.objects.get(run_id=run_id, key=spec.key)
    return step


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
    step = _step_get_or_create(run_id, spec)
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
        prepared = prepare(run, step)
        release_connection()
        ledger = StepLedger(
            run_id=run_id,
            step_id=step.id,
            step_key=step.key,
            budget_usd=run.budget_usd,
            user_id=run.created_by_id,
        )
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
                },
            )
        run_touch(run_id=run_id)
    if step.status == Step.Status.SUCCEEDED and step.output is not None:
        return step.output
    return output


def _step_fail(step: Step, exc: BaseException) -> None:
    detail = getattr(exc, "detail", None) or f"{type(exc).__name__}: {exc}"
    code = getattr(exc, "code", None) or "internal"
    with transaction.atomic():
        Step.objects.filter(id=step.id, status=Step.Status.RUNNING).update(
            status=Step.Status.FAILED, error=str(detail)[:4000], finished_at=timezone.now()
        )
        emit(
            run_id=step.run_id,
            type="step.failed",
            payload={**_step_ref(step), "reason": code},
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
