"""Running one step durably: claim it, call the model without holding a connection, store it.

Every agent action is a ``Step`` row keyed ``(run, key)``. ``step_run`` makes re-delivery
and resume free: a succeeded step returns its stored output (no model call), a step another
live worker holds makes the caller wait (``StepBusy``), and a step whose worker died (stale
heartbeat) is taken over. While the model works the step's heartbeat is touched from a side
thread that borrows a connection only for the moment of each update.

A lost connection (PostgreSQL or Redis, ``pipeline.transient``) never fails a step: the step
is handed back (pending, its paid answers kept for replay) and the error goes up for the
task to be tried again. Every answer is stored by the step's ledger (``.ledger``) the moment
it arrives.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from pydantic import BaseModel

from common.db import prepared_cursor
from common.logging import get_logger

from ..events import events_hooked, events_push_on_commit, events_stored
from ..failures import failure_for
from ..models import Event, Run, Step, StepCall
from ..roles import Prompt
from ..tracing import step_span
from ..transient import drop_connection, is_transient, retry_transient
from .heartbeats import heartbeat, storer
from .ledger import StepLedger, release_connection
from .run_state import RunStopped, emit, run_check_bounds, stage_mark
from .step_sql import CLAIM, STORE, STORE_PAID

__all__ = [
    "StageEdge",
    "StepBusy",
    "StepLedger",
    "StepSpec",
    "model_call",
    "release_connection",
    "step_run",
]

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
    # A stage's edge the step's claim records (``stage_mark``'s, in the claim's statement).
    edge: StageEdge | None = None


@dataclass(frozen=True)
class StageEdge:
    """A stage's edge marked with a step's claim: ``stage_mark``'s arguments."""

    stage: str
    edge: str
    status: str | None = None
    from_statuses: tuple[str, ...] = ()
    started: bool = False

    def mark(self, run_id: int) -> None:
        """Mark it on its own (the step answered from its row, so nothing was claimed)."""
        stage_mark(
            run_id=run_id,
            stage=self.stage,
            edge=self.edge,
            status=self.status,
            from_statuses=self.from_statuses,
            started=self.started,
        )


def _stale_before() -> Any:
    return timezone.now() - timedelta(seconds=float(settings.PIPELINE_STALE_SECONDS))


def _claim(run_id: int, spec: StepSpec) -> tuple[Step, bool] | None:
    """The step, created or claimed for this worker, and whether it is new; else None.

    Its ``step.started`` event (and its stage's edge) is stored by the same statement."""
    edge = spec.edge
    now = timezone.now()
    hooked = edge is not None and events_hooked([f"stage.{edge.edge}"])
    with transaction.atomic() if hooked else nullcontext(), prepared_cursor() as cursor:
        cursor.execute(
            CLAIM,
            {
                "run": run_id,
                "key": spec.key,
                "role": spec.role,
                "round": spec.round,
                "attempt": spec.attempt,
                "plan_task": spec.plan_task_id,
                "input": json.dumps(spec.input),
                "task": json.dumps(spec.input.get("task")),
                "now": now,
                "active": list(Run.ACTIVE),
                "max_tokens": int(settings.PIPELINE_MAX_RUN_TOKENS),
                "stage": edge.stage if edge else None,
                "field": f"{edge.edge}_at" if edge else "",
                "at": now.isoformat(),
                "status": edge.status if edge else None,
                "from": list(edge.from_statuses) if edge and edge.status else [],
                "started": bool(edge and edge.started),
                "edge_type": f"stage.{edge.edge}" if edge else "",
                "edge_payload": json.dumps({"stage": edge.stage} if edge else {}),
            },
        )
        rows = cursor.fetchall()
        if rows:
            events_stored(run_id=run_id, rows=[row[4:] for row in rows])
    if not rows:
        return None
    step_id, created, round_, attempt = rows[0][:4]
    step = Step(
        id=step_id,
        run_id=run_id,
        key=spec.key,
        role=spec.role,
        round=round_,
        attempt=attempt,
        plan_task_id=spec.plan_task_id,
        input=spec.input,
        status=Step.Status.RUNNING,
    )
    return step, bool(created)


def _claim_refused(run_id: int, spec: StepSpec) -> tuple[Step, bool] | dict[str, Any]:
    """Why the claim found nothing: the stored output, a takeover, or StepBusy/RunStopped.

    A step that could have been claimed but was not (new or pending) means the run stopped
    or passed a bound: ``run_check_bounds`` fails it with the bound's code in that case.
    """
    step = Step.objects.filter(run_id=run_id, key=spec.key).first()
    if step is None or step.status == Step.Status.PENDING:
        run_check_bounds(run_id=run_id)
        raise RunStopped(run_id)
    if step.status == Step.Status.SUCCEEDED:
        return step.output or {}
    if step.status != Step.Status.RUNNING:
        raise RunStopped(run_id)
    stale = step.heartbeat_at is None or step.heartbeat_at < _stale_before()
    handed_back = stale and Step.objects.filter(
        id=step.id, status=Step.Status.RUNNING, heartbeat_at=step.heartbeat_at
    ).update(status=Step.Status.PENDING)
    if not handed_back:
        raise StepBusy(spec.key)
    taken_over = _claim(run_id, spec)
    if taken_over is None:  # the run stopped or its time is up, or another worker won it
        run_check_bounds(run_id=run_id)
        raise StepBusy(spec.key)
    logger.warning("step.taken_over", run_id=run_id, step=spec.key)
    return taken_over


def _step_ref(step: Step, spec: StepSpec | None = None) -> dict[str, Any]:
    """The fields every step event starts with."""
    ref: dict[str, Any] = {"step_id": step.id, "key": step.key, "role": step.role}
    if spec is not None:
        ref["task"] = spec.input.get("task")
    return ref


Events = list[tuple[str, dict[str, Any]]]
# A plan task's status and result that follow from a step's output (None: nothing to store).
TaskOutcome = Callable[[dict[str, Any]], tuple[str, dict[str, Any]] | None]


def step_run(
    *,
    run_id: int,
    spec: StepSpec,
    prepare: Callable[[Run, Step], Any],
    execute: Callable[[Any, StepLedger], dict[str, Any]],
    events: Callable[[dict[str, Any]], Events] | None = None,
    on_success: Callable[[Step, dict[str, Any]], None] | None = None,
    run: Run | None = None,
    task_outcome: TaskOutcome | None = None,
) -> dict[str, Any]:
    """Run one step once, whatever happens to the message that asked for it.

    ``prepare`` reads what the step needs (with a connection), ``execute`` calls the model
    and/or the sandbox (without one). ``events`` names the events that follow from the
    output (published with it, before ``step.completed``); ``on_success`` writes rows that
    follow from it in the same transaction that stores it. ``run`` is the run as the caller
    already loaded it (its bounds are checked again by the claim). ``task_outcome`` gives
    the status and result of the step's plan task that follow from the output (or None),
    stored by the statement that stores the output. Returns the stored output.
    Raises ``RunStopped`` when the run is no longer active, ``StepBusy`` when another live
    worker holds the step, and the model's error (after marking the step failed).
    """
    if run is None:
        run = run_check_bounds(run_id=run_id)
    claimed = _claim(run_id, spec) or _claim_refused(run_id, spec)
    if isinstance(claimed, dict):
        if spec.edge is not None:  # stored before (or copied by a fork): nothing was claimed
            spec.edge.mark(run_id)
        return claimed
    step, created = claimed
    with step_span(step):
        return _step_execute(
            run, step, spec, created, prepare, execute, events, on_success, task_outcome
        )


def _step_execute(
    run: Run,
    step: Step,
    spec: StepSpec,
    created: bool,
    prepare: Callable[[Run, Step], Any],
    execute: Callable[[Any, StepLedger], dict[str, Any]],
    events: Callable[[dict[str, Any]], Events] | None,
    on_success: Callable[[Step, dict[str, Any]], None] | None,
    task_outcome: TaskOutcome | None = None,
) -> dict[str, Any]:
    """The claimed step's work (see ``step_run``), inside its span."""
    run_id = run.id
    ledger: StepLedger | None = None
    try:
        ledger = _ledger_for(run, step, created=created)
        prepared = prepare(run, step)
        release_connection()
        with heartbeat(step_id=step.id, run_id=run_id):
            output = execute(prepared, ledger)
    except Exception as exc:
        # An answer held for the store is stored on its own: the step will not store.
        _store_held_answer(ledger, None)
        if is_transient(exc):
            _step_hand_back(step, exc)
        else:
            _step_fail(step, exc)
        raise
    held = ledger.take_held()
    try:
        return _step_store(
            step,
            spec,
            output,
            events=events,
            on_success=on_success,
            ledger=ledger,
            held=held,
            task_outcome=task_outcome,
        )
    except Exception as exc:
        # The store (and the answer it carried) may have landed or not: the answer is stored
        # on its own unless it did, before the step is handed back.
        _store_held_answer(ledger, held)
        if is_transient(exc):
            _step_hand_back(step, exc)
        raise


def _store_held_answer(ledger: StepLedger | None, held: dict[str, Any] | None) -> None:
    """Store the answer the ledger holds (or ``held``, taken from it) on its own."""
    if ledger is None:
        return
    try:
        if held is not None:
            ledger.record_held(held)
        ledger.flush()
    except Exception:
        logger.warning("step.answer_store_failed", step=ledger.step_key, exc_info=True)


def _step_store(
    step: Step,
    spec: StepSpec,
    output: dict[str, Any],
    *,
    events: Callable[[dict[str, Any]], Events] | None,
    on_success: Callable[[Step, dict[str, Any]], None] | None,
    ledger: StepLedger | None = None,
    held: dict[str, Any] | None = None,
    task_outcome: TaskOutcome | None = None,
) -> dict[str, Any]:
    """Store the step's output and its events (see ``step_run``), and the last answer
    ``held`` for it by ``ledger`` when there is one; the output stored."""
    run_id = step.run_id
    following = events(output) if events is not None else []
    extra = {"mode": output["mode"]} if output.get("mode") else {}
    outcome = task_outcome(output) if task_outcome is not None else None
    params: dict[str, Any] = {
        **(held or {}),
        "step": step.id,
        "run": run_id,
        # This process sends what follows the step: should it die first, the reaper sees.
        "worker": storer(),
        "now": timezone.now(),
        "output": json.dumps(output),
        "events": json.dumps(
            [
                {"n": n, "type": kind, "payload": payload}
                for n, (kind, payload) in enumerate(following)
            ]
        ),
        "last": len(following),
        "ref": json.dumps(_step_ref(step, spec)),
        # "sandbox", or "static review" when the tester fell back to a review.
        "extra": json.dumps(extra),
        "task_id": step.plan_task_id if outcome is not None else None,
        "task_status": outcome[0] if outcome is not None else None,
        "task_result": json.dumps(outcome[1]) if outcome is not None else None,
    }
    # One statement stores the step and its events; rows that follow from the output are
    # written in the same transaction.
    with transaction.atomic() if on_success is not None else nullcontext():
        with prepared_cursor() as cursor:
            cursor.execute(STORE if held is None else STORE_PAID, params)
            rows = cursor.fetchall()
        stored, ordinal, cost, warned = rows[0][:4]
        if stored and on_success is not None:
            on_success(step, output)
        published = [
            Event(
                id=row[4], run_id=run_id, seq=row[5], type=row[6], payload=_json(row[7]), at=row[8]
            )
            for row in rows
            if row[4] is not None
        ]
        events_push_on_commit(run_id=run_id, events=published)
    if held is not None and ledger is not None:
        if stored:
            ledger.held_stored(held, ordinal=ordinal, cost=cost, warned=warned)
        else:  # the step was not running any more: its answer is stored on its own
            ledger.record_held(held)
    if stored:
        return output
    return step_output_stored(run_id=run_id, key=spec.key) or output


def _step_hand_back(step: Step, exc: BaseException) -> None:
    """A lost connection stopped the step: it goes back to pending with its paid answers.

    Nothing is retired: whoever runs the step next (the task's retry, or the reaper's
    resume) replays the stored answers instead of buying them again. Should the database
    still be away, the step stays running without a heartbeat and the reaper takes it over
    once it is stale.
    """
    logger.warning(
        "step.handed_back",
        run_id=step.run_id,
        step=step.key,
        error=f"{type(exc).__name__}: {exc}"[:300],
    )
    drop_connection()
    try:
        retry_transient(
            lambda: Step.objects.filter(id=step.id, status=Step.Status.RUNNING).update(
                status=Step.Status.PENDING, heartbeat_at=None
            ),
            what="step.hand_back",
            attempts=4,
        )
    except Exception:
        logger.warning("step.hand_back_failed", run_id=step.run_id, step=step.key)
    finally:
        release_connection()


def _json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str | bytes) else value


def step_output_stored(*, run_id: int, key: str) -> dict[str, Any] | None:
    """The output a step stored (when another worker finished it first)."""
    return (
        Step.objects.filter(run_id=run_id, key=key, status=Step.Status.SUCCEEDED)
        .values_list("output", flat=True)
        .first()
    )


def _ledger_for(run: Run, step: Step, *, created: bool) -> StepLedger:
    """The step's ledger; a step that existed before may hold answers already paid for."""
    calls: list[StepCall] = []
    if not created:
        calls = list(StepCall.objects.filter(step_id=step.id).order_by("ordinal"))
    ledger = StepLedger(
        run_id=run.id,
        step_id=step.id,
        step_key=step.key,
        budget_usd=run.budget_usd,
        user_id=run.created_by_id,
        project_id=run.project_id,
        role=step.role,
        stored=[call for call in calls if not call.retired],
        next_ordinal=calls[-1].ordinal + 1 if calls else 0,
    )
    if not created:
        ledger.release_earlier_holders()
        ledger.recover_stashed()
    return ledger


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
    *,
    prompt: Prompt,
    context: dict[str, Any],
    ledger: StepLedger,
    chain: list[str] | None,
    last: bool = False,
) -> BaseModel:
    """Ask ``prompt.role``'s model chain; the validated answer (``complete`` repairs once).

    ``last`` says the step's output follows from this answer with no other slow work (no
    sandbox run, no other call): the ledger then holds the paid answer for the step's store,
    which stores it with the output in one statement. An answer that does not parse, or an
    output that cannot be built from it, has it stored on its own (``_step_execute``).
    """
    from providers.services import complete

    ledger.hold_last = last
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
