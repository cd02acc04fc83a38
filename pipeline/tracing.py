"""Every run is one trace: run -> stage -> step -> model call / sandbox check.

When a run is created (tracing on), its span gets its ids at once: the trace of the request
that created it (a new trace without one) and a new span id, kept on the run as a W3C
``traceparent`` together with the request span's id (``trace_parent_id``). Every process
that works on the run (a worker, after a resume, after the reaper's restart) reads them from
the row: each stage's span id is computed from the run's (``RunTrace.stage_span_id``), a task
runs with its stage's span as the remote parent, and a step's span is a live child of it, so
the model calls and sandbox checks inside are the step's children.

The run's and the stages' spans are exported when their end is known, by a hook on the run's
events (``pipeline.events``): a stage's when its ``stage.completed`` event commits, the run's
(and any stage still open) when its final event commits. A run resumed after it ended is
exported again when it ends again, under the same ids, with its later end.

Nothing here runs unless ``common.tracing`` is configured (``tracing_install``).
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache, partial
from typing import Any, TypeVar

from django.db import transaction
from django.db.models.signals import pre_save
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from common.logging import get_logger
from common.tracing import (
    current_span_ids,
    new_trace_id,
    remote_context,
    span,
    span_export,
    span_id_for,
    traceparent_format,
    traceparent_parse,
    tracing_enabled,
)

from .events import FINAL_EVENT_TYPES, events_hook_add, events_hook_remove
from .models import Event, Run, Step

logger = get_logger(__name__)

R = TypeVar("R")

# The stage each task of the canvas works in (its steps are that stage's children).
STAGE_OF_TASK = {
    "pipeline.design_architect": "design",
    "pipeline.design_planner": "design",
    "pipeline.orchestrate": "coding",
    "pipeline.coder": "coding",
    "pipeline.tester": "coding",
    "pipeline.integrate": "integrate",
    "pipeline.finalize": "finalize",
}
WORKFLOW_NAME = "aiflow.run"


@dataclass(frozen=True)
class RunTrace:
    """Where a run's spans sit: its trace, its own span, and the span that started it."""

    trace_id: int
    span_id: int
    sampled: bool
    parent_id: int | None

    def stage_span_id(self, stage: str) -> int:
        return span_id_for(self.trace_id, self.span_id, "stage", stage)

    @property
    def trace_id_hex(self) -> str:
        return f"{self.trace_id:032x}"


def run_trace_of(traceparent: str, parent_id: str = "") -> RunTrace | None:
    """The ``RunTrace`` kept on a run (None for a run made while tracing was off)."""
    parsed = traceparent_parse(traceparent)
    if parsed is None:
        return None
    trace_id, span_id, sampled = parsed
    try:
        parent = int(parent_id, 16) if parent_id else None
    except ValueError:
        parent = None
    return RunTrace(trace_id=trace_id, span_id=span_id, sampled=sampled, parent_id=parent)


def trace_id_of(run: Run) -> str | None:
    """The hex trace id of ``run`` (what a trace viewer searches for), or None."""
    found = run_trace_of(run.traceparent)
    return found.trace_id_hex if found else None


def run_trace_new() -> tuple[str, str]:
    """A new run's ``traceparent`` and its parent span's id: a child of the current span (the
    request's) when there is one, else the root of a new trace."""
    current = current_span_ids()
    if current is not None:
        trace_id, parent, sampled = current
        parent_hex = f"{parent:016x}"
    else:
        trace_id, parent_hex, sampled = new_trace_id(), "", True
    span_id = secrets.randbits(64) or 1
    return traceparent_format(trace_id, span_id, sampled=sampled), parent_hex


def _run_trace_fields(sender: Any, instance: Run, **_: Any) -> None:
    """A run being created gets its trace ids (``pre_save``)."""
    if instance._state.adding and not instance.traceparent and tracing_enabled():
        instance.traceparent, instance.trace_parent_id = run_trace_new()


def _lookup(run_id: int) -> RunTrace | None:
    row = Run.objects.filter(id=run_id).values_list("traceparent", "trace_parent_id").first()
    return run_trace_of(*row) if row else None


@lru_cache(maxsize=4096)
def _cached(run_id: int) -> RunTrace:
    found = _lookup(run_id)
    if found is None:
        raise LookupError(run_id)
    return found


def run_trace(run_id: int) -> RunTrace | None:
    """The run's trace ids (they never change once set; a run without them is not cached)."""
    try:
        return _cached(run_id)
    except LookupError:
        return None


@contextmanager
def run_context(run_id: int, stage: str | None = None) -> Iterator[None]:
    """Spans started inside are children of the run's span (or of ``stage``'s span)."""
    found = run_trace(run_id) if tracing_enabled() else None
    if found is None:
        yield
        return
    parent = found.stage_span_id(stage) if stage else found.span_id
    with remote_context(found.trace_id, parent, found.sampled):
        yield


def task_traced(*, task_name: str, run_id: int, body: Callable[[], R]) -> Callable[[], R]:
    """``body`` of a canvas task, run under its stage's span (``body`` itself when off)."""
    if not tracing_enabled():
        return body

    def traced_body() -> R:
        with run_context(run_id, STAGE_OF_TASK.get(task_name)):
            return body()

    return traced_body


@contextmanager
def step_span(step: Step) -> Iterator[Any]:
    """The span of a step a worker claimed: ``invoke_agent <role>``, with the step's usage."""
    attributes = {
        "gen_ai.operation.name": "invoke_agent",
        "gen_ai.agent.name": step.role,
        "aiflow.run.id": step.run_id,
        "aiflow.step.id": step.id,
        "aiflow.step.key": step.key,
        "aiflow.step.round": step.round,
        "aiflow.step.attempt": step.attempt,
    }
    with span(f"invoke_agent {step.role}", attributes=attributes) as current:
        yield current
        if current is not None and current.is_recording():
            usage = (
                Step.objects.filter(id=step.id)
                .values_list("provider", "model", "tokens_in", "tokens_out", "cost_usd", "status")
                .first()
            )
            if usage is not None:
                provider, model, tokens_in, tokens_out, cost, status = usage
                current.set_attributes(
                    {
                        "gen_ai.provider.name": provider or "none",
                        "gen_ai.request.model": model or "none",
                        "gen_ai.usage.input_tokens": tokens_in,
                        "gen_ai.usage.output_tokens": tokens_out,
                        "gen_ai.usage.cost.amount": float(cost),
                        "gen_ai.usage.cost.currency": "USD",
                        "aiflow.step.status": status,
                    }
                )


# --- the run's and the stages' spans, exported when they end -----------------------------


def _moment(value: Any) -> datetime | None:
    return parse_datetime(value) if isinstance(value, str) else None


def _export_stage(run: Run, found: RunTrace, stage: str, *, end: datetime | None = None) -> None:
    times = (run.stages or {}).get(stage) or {}
    start = _moment(times.get("started_at"))
    finish = _moment(times.get("completed_at")) or end
    if start is None or finish is None:
        return
    failed = "completed_at" not in times and run.status == Run.Status.FAILED
    span_export(
        f"stage {stage}",
        trace_id=found.trace_id,
        span_id=found.stage_span_id(stage),
        parent_id=found.span_id,
        sampled=found.sampled,
        start=start,
        end=finish,
        attributes={"aiflow.run.id": run.id, "aiflow.stage": stage},
        error=f"the run failed in {stage}" if failed else None,
    )


def _export_stage_completed(run_id: int, stage: str) -> None:
    try:
        run = Run.objects.only("id", "stages", "status", "traceparent", "trace_parent_id").get(
            id=run_id
        )
        found = run_trace_of(run.traceparent, run.trace_parent_id)
        if found is not None:
            _export_stage(run, found, stage)
    except Exception:  # a trace is never worth a failed step
        logger.warning("tracing.stage_export_failed", run_id=run_id, stage=stage, exc_info=True)


def _export_run(run_id: int) -> None:
    try:
        run = Run.objects.get(id=run_id)
        found = run_trace_of(run.traceparent, run.trace_parent_id)
        if found is None:
            return
        end = run.finished_at or timezone.now()
        for stage, times in (run.stages or {}).items():
            if "completed_at" not in (times or {}):
                _export_stage(run, found, stage, end=end)
        failed = run.status == Run.Status.FAILED
        span_export(
            f"invoke_workflow {WORKFLOW_NAME}",
            trace_id=found.trace_id,
            span_id=found.span_id,
            parent_id=found.parent_id,
            sampled=found.sampled,
            start=run.created_at,
            end=end,
            attributes={
                "gen_ai.operation.name": "invoke_workflow",
                "gen_ai.workflow.name": WORKFLOW_NAME,
                "gen_ai.usage.input_tokens": run.tokens_in,
                "gen_ai.usage.output_tokens": run.tokens_out,
                "gen_ai.usage.cost.amount": float(run.cost_usd),
                "gen_ai.usage.cost.currency": "USD",
                "aiflow.run.id": run.id,
                "aiflow.project.id": run.project_id,
                "aiflow.run.status": run.status,
                "aiflow.run.error_code": run.error_code or None,
                "aiflow.run.resume_count": run.resume_count,
            },
            error=(run.error_code or "failed") if failed else None,
        )
    except Exception:  # a trace is never worth a failed run
        logger.warning("tracing.run_export_failed", run_id=run_id, exc_info=True)


def _on_events(events: list[Event]) -> None:
    for event in events:
        if event.type == "stage.completed":
            stage = str((event.payload or {}).get("stage") or "")
            if stage:
                transaction.on_commit(partial(_export_stage_completed, event.run_id, stage))
        elif event.type in FINAL_EVENT_TYPES:
            transaction.on_commit(partial(_export_run, event.run_id))


def tracing_install() -> None:
    """Give new runs trace ids and export the run and stage spans (tracing configured)."""
    events_hook_add(types={"stage.completed", *FINAL_EVENT_TYPES}, hook=_on_events)
    pre_save.connect(_run_trace_fields, sender=Run, dispatch_uid="pipeline.tracing.run_fields")


def tracing_uninstall() -> None:
    """Undo ``tracing_install`` (tests)."""
    events_hook_remove(_on_events)
    pre_save.disconnect(sender=Run, dispatch_uid="pipeline.tracing.run_fields")
    _cached.cache_clear()
