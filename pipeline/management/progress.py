"""Follow a run from the terminal: read its events from the table and print them.

The Event table is the source of truth, so following works from any machine that reaches the
database, survives restarts of the web process, and never misses an event. The database
connection is handed back between polls.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from django.conf import settings
from django.db import connection

from ..events import FINAL_EVENT_TYPES, event_list_after, event_serialize
from ..models import Run


def _decimal(value: Any) -> Decimal:
    try:
        return Decimal(str(value))
    except (InvalidOperation, ValueError):
        return Decimal("0")


def _parse_at(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


@dataclass
class Totals:
    """What the steps reported so far."""

    steps: int = 0
    tokens_in: int = 0
    tokens_out: int = 0
    cost_usd: Decimal = Decimal("0")
    files: int = 0
    failovers: int = 0
    stage: str = "-"


@dataclass
class ProgressPrinter:
    """Turns events into terminal lines: ``[elapsed] stage | what happened``."""

    out: Any  # a text stream: sys.stdout, or a management command's OutputWrapper
    started: datetime
    verbosity: int = 1
    totals: Totals = field(default_factory=Totals)
    # step id -> the name printed when it started (completion events carry fewer fields).
    names: dict[Any, str] = field(default_factory=dict)

    def _name(self, payload: dict[str, Any]) -> str:
        ident = payload.get("step_id") or payload.get("key")
        return self.names.get(ident) or _step_name(payload)

    def _line(self, event: dict[str, Any], text: str) -> None:
        elapsed = (_parse_at(event["at"]) - self.started).total_seconds()
        self.out.write(f"[{elapsed:8.1f}s] {self.totals.stage:<11} {text}\n")
        self.out.flush()

    def handle(self, event: dict[str, Any]) -> None:
        kind, payload = event["type"], event.get("payload") or {}
        totals = self.totals
        if kind == "stage.started":
            totals.stage = str(payload.get("stage", "-"))
            self._line(event, f"stage {totals.stage} started")
        elif kind == "stage.completed":
            self._line(event, f"stage {payload.get('stage', '-')} completed")
        elif kind == "step.started":
            name = self.names[payload.get("step_id") or payload.get("key")] = _step_name(payload)
            self._line(event, f"step  {name} started")
        elif kind == "step.completed":
            totals.steps += 1
            tokens_in, tokens_out = (
                int(payload.get("tokens_in") or 0),
                int(payload.get("tokens_out") or 0),
            )
            cost = _decimal(payload.get("cost_usd"))
            totals.tokens_in += tokens_in
            totals.tokens_out += tokens_out
            totals.cost_usd += cost
            provider, model_name = payload.get("provider"), payload.get("model")
            model = f"{provider}:{model_name}" if provider or model_name else "none"
            latency = int(payload.get("latency_ms") or 0) / 1000
            self._line(
                event,
                f"step  {self._name(payload)} done  model={model} tokens={tokens_in}/{tokens_out} "
                f"cost=${cost:.6f} model_time={latency:.1f}s | total tokens="
                f"{totals.tokens_in}/{totals.tokens_out} cost=${totals.cost_usd:.6f}",
            )
        elif kind == "step.failed":
            self._line(event, f"step  {self._name(payload)} FAILED: {payload.get('reason', '?')}")
        elif kind == "file.written":
            totals.files += 1
            if self.verbosity >= 2:
                self._line(event, f"file  {payload.get('path')} ({payload.get('size')} bytes)")
        elif kind == "provider.failover":
            totals.failovers += 1
            self._line(event, f"provider failover: {_compact(payload)}")
        elif kind == "run.started":
            if payload.get("kind") == "import":
                source = payload.get("url") or payload.get("archive") or ""
                self._line(event, f"run.started: import of {source}")
            else:
                self._line(event, f"run.started: {str(payload.get('prompt', ''))[:100]!r}")
        elif kind == "import.progress":
            self._line(event, f"import {payload.get('phase', '-')}: {payload.get('detail', '')}")
        elif kind in FINAL_EVENT_TYPES:
            detail = payload.get("detail") or payload.get("reason") or ""
            self._line(
                event, f"{kind}{': ' + str(detail) if detail and kind != 'run.completed' else ''}"
            )
        else:
            self._line(event, f"{kind} {_compact(payload)}".rstrip())


def _step_name(payload: dict[str, Any]) -> str:
    name = str(payload.get("role") or "?")
    if payload.get("task"):
        name += f"[{payload['task']}]"
    if payload.get("round"):
        name += f" r{payload['round']}"
    if payload.get("attempt") and int(payload["attempt"]) > 1:
        name += f" attempt {payload['attempt']}"
    return name


def _compact(payload: dict[str, Any], limit: int = 160) -> str:
    text = " ".join(f"{key}={value}" for key, value in payload.items())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _poll(run_id: int, after_seq: int) -> list[dict[str, Any]]:
    try:
        return [event_serialize(e) for e in event_list_after(run_id=run_id, after_seq=after_seq)]
    finally:
        if not connection.in_atomic_block:
            connection.close()


def run_follow(
    *,
    run: Run,
    printer: ProgressPrinter,
    on_event: Callable[[dict[str, Any]], None] | None = None,
    after_seq: int = 0,
    poll_seconds: float | None = None,
    timeout_seconds: float | None = None,
) -> dict[str, Any] | None:
    """Print the run's events in seq order until its final event; return that event.

    Returns ``None`` when ``timeout_seconds`` passes first. ``on_event`` sees each event after
    it was printed (the CLI approves the gate there).
    """
    poll = poll_seconds if poll_seconds is not None else settings.EVENTS_POLL_SECONDS
    deadline = None if timeout_seconds is None else time.monotonic() + timeout_seconds
    last = after_seq
    while deadline is None or time.monotonic() < deadline:
        events = _poll(run.pk, last)
        for event in events:
            printer.handle(event)
            last = event["seq"]
            if on_event is not None:
                on_event(event)
            if event["type"] in FINAL_EVENT_TYPES:
                return event
        if not events:
            time.sleep(poll)
    return None


def artifact_locations(*, run: Run) -> dict[str, str]:
    """Where a run's files can be fetched: the tree, the zip, the diff base (URLs)."""
    base = settings.PUBLIC_BASE_URL
    project_id = run.project_id
    return {
        "files": f"{base}/projects/{project_id}/files?run={run.pk}",
        "download": f"{base}/projects/{project_id}/download?run={run.pk}",
        "events": f"{base}/runs/{run.pk}/events",
    }
