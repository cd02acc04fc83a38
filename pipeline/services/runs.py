"""Runs: create, start, cancel, resume, approve, retry a step, reap the stalled; their
options. A run's events, stage edges, status changes and bounds are in ``run_state``.

Every status change is a conditional update (``filter(status__in=...).update(...)``), so two
workers (or a worker and a user) never both win a transition, and the run's final event is
published in the same transaction as its final status: no event follows it.
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import BooleanField, Exists, ExpressionWrapper, OuterRef, Q
from django.utils import timezone
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from common.errors import ApplicationError, Conflict, QuotaExceeded
from common.logging import get_logger, get_request_id
from providers.selectors import model_refusal

from ..canvas import canvas_dispatch
from ..events import publish
from ..flow import IMPORT, ORCHESTRATE, Next
from ..models import PlanTask, Run, Step
from ..selectors import user_spent_last_day_usd
from .liveness import workers_gone
from .run_state import run_revoke

logger = get_logger(__name__)

# --- options ---------------------------------------------------------------------------------


class RunOptions(BaseModel):
    """What a request may set per run (``options`` of POST /projects/{id}/generate)."""

    model_config = ConfigDict(extra="forbid")

    providers: list[str] | None = None
    require_approval: bool = False
    max_design_rounds: int = Field(default=3, ge=1)
    max_fix_attempts: int = Field(default=3, ge=1)
    budget_usd: Decimal | None = Field(default=None, gt=0, max_digits=12, decimal_places=6)

    @field_validator("providers")
    @classmethod
    def _known_providers(cls, value: list[str] | None) -> list[str] | None:
        if value is None:
            return None
        if not value:
            raise ValueError("name at least one provider, or leave providers out")
        chain = []
        configured = settings.LLM_PROVIDERS
        for entry in value:
            provider, _, model = str(entry).partition(":")
            if provider != "offline" and provider not in configured:
                raise ValueError(f"provider {provider!r} is not configured")
            if not model:
                model = (
                    "offline"
                    if provider == "offline"
                    else configured[provider].get("default_model") or ""
                )
                if not model:
                    raise ValueError(f"name a model for provider {provider!r} as 'provider:model'")
            refusal = model_refusal(f"{provider}:{model}")
            if refusal:
                raise ValueError(refusal)
            chain.append(f"{provider}:{model}")
        return chain


def run_options_validate(options: dict[str, Any] | None) -> dict[str, Any]:
    """Options with defaults from settings; ``ApplicationError(code="invalid_options")``."""
    data = dict(options or {})
    data.setdefault("require_approval", settings.PIPELINE_REQUIRE_APPROVAL)
    data.setdefault("max_design_rounds", settings.PIPELINE_MAX_DESIGN_ROUNDS)
    data.setdefault("max_fix_attempts", settings.PIPELINE_MAX_FIX_ATTEMPTS)
    cap = settings.LLM_RUN_BUDGET_MAX_USD
    if data.get("budget_usd") is None:
        # The operator's default budget, never above the cap; the cap itself otherwise.
        defaults = [Decimal(v) for v in (settings.PIPELINE_DEFAULT_BUDGET_USD, cap) if v]
        if defaults:
            data["budget_usd"] = str(min(defaults))
    try:
        parsed = RunOptions.model_validate(data)
    except ValidationError as exc:
        detail = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'options'}: {err['msg']}"
            for err in exc.errors()
        )
        raise ApplicationError(f"Invalid options: {detail}", code="invalid_options") from exc
    if parsed.max_design_rounds > settings.PIPELINE_OPTION_MAX_ROUNDS:
        raise ApplicationError(
            f"max_design_rounds may be at most {settings.PIPELINE_OPTION_MAX_ROUNDS}.",
            code="invalid_options",
        )
    if parsed.max_fix_attempts > settings.PIPELINE_OPTION_MAX_FIX_ATTEMPTS:
        raise ApplicationError(
            f"max_fix_attempts may be at most {settings.PIPELINE_OPTION_MAX_FIX_ATTEMPTS}.",
            code="invalid_options",
        )
    if cap is not None and parsed.budget_usd is not None and parsed.budget_usd > cap:
        raise ApplicationError(
            f"budget_usd may be at most {cap} USD per run (the operator's cap).",
            code="budget_above_cap",
            extra={"cap_usd": str(cap)},
        )
    result = parsed.model_dump(mode="json")
    return result


# --- the public services ------------------------------------------------------------------


def _deadline() -> Any:
    return timezone.now() + timedelta(seconds=settings.PIPELINE_MAX_WALL_SECONDS)


def _dispatch_on_commit(run_id: int, start: Next | None = None) -> None:
    transaction.on_commit(lambda: canvas_dispatch(run_id=run_id, start=start))


def prompt_validate(prompt: str | None) -> str:
    """The prompt, stripped; ``ApplicationError(code="invalid_prompt")`` when empty or long."""
    prompt = (prompt or "").strip()
    if not prompt:
        raise ApplicationError("The prompt may not be empty.", code="invalid_prompt")
    if len(prompt) > settings.PIPELINE_PROMPT_MAX_CHARS:
        raise ApplicationError(
            f"The prompt may be at most {settings.PIPELINE_PROMPT_MAX_CHARS} characters.",
            code="invalid_prompt",
        )
    return prompt


def run_create(
    *,
    project: Any,
    user: Any,
    prompt: str,
    options: dict[str, Any],
    start: Next | None = None,
    started: dict[str, Any] | None = None,
    **fields: Any,
) -> Run:
    """Create a run with validated ``options`` and queue its canvas from ``start`` on commit.

    Inside the caller's transaction (it may add rows the run needs before its canvas
    starts: a fork's reused steps). ``fields`` are further model fields (``base_run``,
    ``forked_from``, ...); ``started`` is added to the ``run.started`` event's payload.
    """
    daily_cap = settings.LLM_USER_DAILY_BUDGET_USD
    if daily_cap is not None and user is not None:
        spent = user_spent_last_day_usd(user_id=user.id)
        if spent >= daily_cap:
            raise QuotaExceeded(
                f"Your runs spent ${spent:.2f} in the last 24 hours, the most one user may "
                f"spend in a day (${daily_cap}); start the run later.",
                code="daily_budget",
                extra={"daily_budget_usd": str(daily_cap), "spent_usd": str(spent)},
            )
    budget = options.get("budget_usd")
    try:
        budget_value = Decimal(str(budget)) if budget is not None else None
    except InvalidOperation as exc:  # pragma: no cover - validated by run_options_validate
        raise ApplicationError("Invalid budget_usd.", code="invalid_options") from exc
    run = Run.objects.create(
        project=project,
        created_by=user,
        prompt=prompt,
        options=options,
        budget_usd=budget_value,
        deadline_at=_deadline(),
        heartbeat_at=timezone.now(),
        request_id=get_request_id() or "",
        **fields,
    )
    publish(
        run_id=run.id,
        type="run.started",
        payload={"prompt": prompt[:500], "options": options, **(started or {})},
    )
    _dispatch_on_commit(run.id, start)
    return run


def run_start(
    *,
    project: Any,
    user: Any,
    prompt: str,
    options: dict | None = None,
    base_run: Run | None = None,
) -> Run:
    """Create a run of ``project`` for ``prompt`` and queue its canvas once committed.

    With ``base_run`` (a completed run of the project) the run is a follow-up: it plans a
    change to that run's tree (``run_generate`` picks the base the way the API does).
    """
    prompt = prompt_validate(prompt)
    validated = run_options_validate(options)
    with transaction.atomic():
        run = run_create(
            project=project,
            user=user,
            prompt=prompt,
            options=validated,
            base_run=base_run,
            started={"base_run": base_run.pk} if base_run is not None else None,
        )
    logger.info(
        "run.created",
        run_id=run.id,
        project_id=project.id,
        base_run_id=base_run.pk if base_run is not None else None,
    )
    return run


def run_cancel(*, run: Run) -> Run:
    """Cancel a run that has not finished: no further step starts; queued tasks are revoked."""
    if not run_cancel_if_active(run_id=run.id):
        raise Conflict("The run has already finished.", code="run_finished")
    run.refresh_from_db()
    return run


def run_cancel_if_active(*, run_id: int, reason: str = "cancelled") -> bool:
    """Cancel the run if it has not finished; whether it was cancelled now.

    Its pending steps are skipped, ``run.cancelled`` is published, and its queued tasks are
    revoked once the transaction commits (those already running stop at their next check).
    Called by ``run_cancel`` and before a run is deleted (``pipeline.signals``).
    """
    with transaction.atomic():
        updated = Run.objects.filter(id=run_id, status__in=Run.UNFINISHED).update(
            status=Run.Status.CANCELLED,
            finished_at=timezone.now(),
            error="Cancelled by the user.",
            error_code="cancelled",
        )
        if not updated:
            return False
        Step.objects.filter(run_id=run_id, status=Step.Status.PENDING).update(
            status=Step.Status.SKIPPED
        )
        publish(run_id=run_id, type="run.cancelled", payload={"reason": reason})
        transaction.on_commit(lambda: run_revoke(run_id))
    logger.info("run.cancelled", run_id=run_id, reason=reason)
    return True


def _reset_unfinished(run_id: int) -> None:
    """Failed and skipped steps go back to pending, and running ones whose worker died.

    A step still running on a live worker (fresh heartbeat) is left to finish: the new
    canvas's task for it waits (``StepBusy``) and then answers from its row.
    """
    stale = _stale_before()
    Step.objects.filter(run_id=run_id, status__in=(Step.Status.FAILED, Step.Status.SKIPPED)).update(
        status=Step.Status.PENDING, error="", heartbeat_at=None
    )
    Step.objects.filter(run_id=run_id, status=Step.Status.RUNNING).filter(
        Q(heartbeat_at__lt=stale) | Q(heartbeat_at__isnull=True)
    ).update(status=Step.Status.PENDING, error="", heartbeat_at=None)
    # Every unfinished task is queued again (its worker may have died holding it).
    PlanTask.objects.filter(run_id=run_id).exclude(status=PlanTask.Status.SUCCEEDED).update(
        status=PlanTask.Status.PENDING, dispatched_at=None
    )


def _stalled() -> Q:
    """Active runs that need a resume: a step's holder died, or the run's work was lost.

    A holder is dead when its step's heartbeat (touched every PIPELINE_HEARTBEAT_SECONDS
    while it runs, model calls included) is older than PIPELINE_STALE_SECONDS. A run with
    no step running and no progress for PIPELINE_QUIET_SECONDS lost its queued work (a
    worker died holding messages it had not started); that bound is long, because a run
    whose next task waits behind busy workers looks the same for a while.
    """
    stale = _stale_before()
    quiet = timezone.now() - timedelta(seconds=settings.PIPELINE_QUIET_SECONDS)
    running = _running_steps()
    dead_holder = Exists(running.filter(Q(heartbeat_at__lt=stale) | Q(heartbeat_at__isnull=True)))
    live_holder = Exists(running.filter(heartbeat_at__gte=stale))
    lost = Q(heartbeat_at__lt=quiet) | Q(heartbeat_at__isnull=True, created_at__lt=quiet)
    return Q(status__in=Run.ACTIVE) & (dead_holder | (lost & ~live_holder))


def _handed_off(worker: str | None = None) -> Q:
    """Active runs with no step running, quiet past the stale bound, whose latest step was
    stored by a named worker process (``worker``, or any): if that process is gone, it died
    before sending what follows the step (``pipeline.services.liveness``)."""
    storer = Q(stored_by=worker) if worker is not None else ~Q(stored_by="")
    quiet = Q(status__in=Run.ACTIVE, heartbeat_at__lt=_stale_before())
    return quiet & storer & ~Q(Exists(_running_steps()))


def _stale_before() -> Any:
    """The heartbeat time before which a holder counts as dead (PIPELINE_STALE_SECONDS)."""
    return timezone.now() - timedelta(seconds=settings.PIPELINE_STALE_SECONDS)


def _running_steps() -> Any:
    """The running steps of the run an outer query looks at (``OuterRef("id")``)."""
    return Step.objects.filter(run_id=OuterRef("id"), status=Step.Status.RUNNING)


def run_resume(*, run: Run) -> Run:
    """Rebuild and re-dispatch the run's canvas; finished steps answer from their rows.

    A failed or cancelled run starts again where it stopped; an active run only when it
    stalled (a step's holder died, or its work was lost), otherwise 409. A paused run goes
    on with its deadline moved by the time it was paused (``steering.run_unpause``).
    """
    if run.status == Run.Status.PAUSED:
        from .steering import run_unpause  # steering builds on this module

        return run_unpause(run=run)
    resumable = Q(status__in=(Run.Status.FAILED, Run.Status.CANCELLED)) | _stalled()
    with transaction.atomic():
        locked = Run.objects.select_for_update().filter(resumable, id=run.id).first()
        if locked is None:
            raise Conflict(
                "Only a failed, cancelled or stalled run can be resumed.", code="not_resumable"
            )
        _run_restart(locked, reason="resumed")
    run.refresh_from_db()
    return run


def _run_restart(run: Run, *, reason: str, deadline: Any = None, **fields: Any) -> None:
    """Reset the unfinished steps and queue the canvas (inside the caller's transaction).

    ``deadline`` replaces a fresh wall-time bound (a paused run keeps its own, moved on);
    ``fields`` are further fields to set.
    """
    _reset_unfinished(run.id)
    Run.objects.filter(id=run.id).update(
        status=Run.Status.QUEUED,
        error="",
        error_code="",
        finished_at=None,
        deadline_at=deadline or _deadline(),
        heartbeat_at=timezone.now(),
        stored_by="",  # what follows is this canvas, sent from here
        resume_count=run.resume_count + 1,
        integration_claimed_at=None,
        **fields,
    )
    publish(run_id=run.id, type="run.resumed", payload={"reason": reason})
    # An import run starts again at its fetch (a stored step answers from its row).
    _dispatch_on_commit(run.id, IMPORT if run.kind == Run.Kind.IMPORT else None)
    logger.info("run.resumed", run_id=run.id, reason=reason)


def run_approve(*, run: Run) -> Run:
    """Let a run waiting at the approval gate go on to coding."""
    with transaction.atomic():
        updated = Run.objects.filter(id=run.id, status=Run.Status.AWAITING_APPROVAL).update(
            status=Run.Status.QUEUED,
            approved_at=timezone.now(),
            heartbeat_at=timezone.now(),
            stored_by="",
            deadline_at=_deadline(),
        )
        if not updated:
            raise Conflict("The run is not waiting for approval.", code="not_awaiting_approval")
        publish(run_id=run.id, type="run.approved", payload={})
        _dispatch_on_commit(run.id, start=ORCHESTRATE)
    run.refresh_from_db()
    return run


def step_retry(*, step: Step) -> Step:
    """Run a failed (or skipped) step again: its run resumes, this step first in line."""
    if step.status not in (Step.Status.FAILED, Step.Status.SKIPPED):
        raise Conflict("Only a failed or skipped step can be retried.", code="not_retryable")
    run_resume(run=step.run)
    step.refresh_from_db()
    return step


def run_reap_stale() -> list[int]:
    """Resume every stalled run (see ``_stalled``), and every run whose storer died before
    it sent what follows (``_handed_off``, its liveness key lapsed): the beat reaper, every
    few seconds. One statement finds both kinds."""
    stalled = _stalled()
    found = list(
        Run.objects.filter(stalled | _handed_off())
        .annotate(is_stalled=ExpressionWrapper(stalled, output_field=BooleanField()))
        .values_list("id", "stored_by", "is_stalled")
    )
    gone = workers_gone(worker for _, worker, is_stalled in found if not is_stalled)
    resumed = []
    for run_id, worker, is_stalled in found:
        if not is_stalled and worker not in gone:
            continue  # its storer lives: the next task waits in a queue
        with transaction.atomic():
            run = (
                Run.objects.select_for_update(skip_locked=True)
                .filter(_stalled() if is_stalled else _handed_off(worker), id=run_id)
                .first()
            )
            if run is None:
                continue
            _run_restart(run, reason="stale" if is_stalled else "worker_lost")
            resumed.append(run_id)
    if resumed:
        logger.warning("run.reaped", runs=resumed)
    return resumed
