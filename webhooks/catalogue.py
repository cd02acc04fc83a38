"""The events an endpoint can hear about, and what each message says.

Each webhook event names the progress event of a run that causes it (``source``); a message
is built from an allow-list of fields of the run and the project, never from a payload as it
came: no prompt, no file, no step output, no free text a model or a test wrote (a failure is
told by its code and a fixed plain reason), nothing secret. Another event is added by name
here: its ``source`` is the progress event that causes it and its ``details`` pick the fields
of that event's payload a receiver may see (a delivery's branch, commit and pull request).

A message follows the Standard Webhooks payload shape: ``{"type", "timestamp", "data"}``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from django.conf import settings

Details = Callable[[dict[str, Any]], dict[str, Any]]

# A failure's code and the plain words a receiver gets for it; the run's own error text can
# quote test output (and so code), and stays behind the API.
FAILURE_REASONS = {
    "budget": "The run spent its budget.",
    "daily_budget": "The owner's daily spending limit was reached.",
    "unpriced_model": "The model has no price.",
    "wall_time": "The run took too long.",
    "max_tokens": "The run used too many tokens.",
    "max_fix_attempts": "A task kept failing its tests.",
    "max_design_rounds": "The architect and planner did not agree.",
    "max_consult_rounds": "Integration conflicts were not resolved.",
    "task_failed": "A task did not succeed.",
    "invalid_plan": "The plan was not usable.",
    "no_files": "No files were produced.",
    "provider_failed": "No model of a step's chain gave an answer.",
    "schema_invalid": "A model's answer did not have the expected form.",
    "internal": "An internal error stopped the run.",
}
DEFAULT_FAILURE_REASON = "The run failed."


def _money(value: Any) -> str | None:
    try:
        return str(Decimal(str(value)))
    except (InvalidOperation, ValueError):
        return None


def _no_details(payload: dict[str, Any]) -> dict[str, Any]:
    return {}


def _budget_details(payload: dict[str, Any]) -> dict[str, Any]:
    return {
        "budget": {
            "budget_usd": _money(payload.get("budget_usd")),
            "cost_usd": _money(payload.get("cost_usd")),
        }
    }


def _text(value: Any, limit: int = 500) -> str | None:
    return str(value)[:limit] if value not in (None, "") else None


def _pushed_details(payload: dict[str, Any]) -> dict[str, Any]:
    return {
        "delivery": {
            "branch": _text(payload.get("branch"), 200),
            "commit": _text(payload.get("commit"), 64),
            "new_commit": bool(payload.get("new_commit")),
        }
    }


def _pull_request_details(payload: dict[str, Any]) -> dict[str, Any]:
    number = payload.get("number")
    return {
        "pull_request": {
            "number": number if isinstance(number, int) else None,
            "url": _text(payload.get("url")),
            "state": _text(payload.get("state"), 32),
            "created": bool(payload.get("created")),
        }
    }


@dataclass(frozen=True)
class WebhookEvent:
    """A webhook event: its name, the run event that causes it, and its extra fields."""

    name: str
    source: str
    label: str
    details: Details = _no_details


EVENTS: dict[str, WebhookEvent] = {
    event.name: event
    for event in (
        WebhookEvent("run.completed", "run.completed", "A run completed"),
        WebhookEvent("run.failed", "run.failed", "A run failed"),
        WebhookEvent("run.awaiting_approval", "run.awaiting_approval", "A run waits for approval"),
        WebhookEvent(
            "run.budget_warning",
            "budget.warning",
            "A run spent 80% of its budget",
            _budget_details,
        ),
        WebhookEvent(
            "delivery.pushed",
            "delivery.pushed",
            "A run was pushed to its branch",
            _pushed_details,
        ),
        WebhookEvent(
            "delivery.pull_request",
            "delivery.pull_request",
            "A run's pull request was opened or updated",
            _pull_request_details,
        ),
    )
}


def source_types() -> frozenset[str]:
    """The run event types that cause a webhook event."""
    return frozenset(event.source for event in EVENTS.values())


def events_for_source(source: str) -> list[WebhookEvent]:
    """The webhook events a run event of type ``source`` causes."""
    return [event for event in EVENTS.values() if event.source == source]


def _iso(value: datetime | None) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value else None


def run_fields(run: Any) -> dict[str, Any]:
    """What a message says of a run: ids, status, why it stopped, usage, times, links."""
    base = settings.PUBLIC_BASE_URL
    fields: dict[str, Any] = {
        "id": run.id,
        "status": run.status,
        "tokens_in": run.tokens_in,
        "tokens_out": run.tokens_out,
        "cost_usd": _money(run.cost_usd),
        "budget_usd": _money(run.budget_usd) if run.budget_usd is not None else None,
        "created_at": _iso(run.created_at),
        "started_at": _iso(run.started_at),
        "finished_at": _iso(run.finished_at),
        "base_run": run.base_run_id,
        "forked_from": run.forked_from_id,
        "url": f"{base}/app/runs/{run.id}",
        "api_url": f"{base}/runs/{run.id}",
    }
    if run.status == "failed" or run.error_code:
        fields["error_code"] = run.error_code or None
        fields["reason"] = FAILURE_REASONS.get(run.error_code, DEFAULT_FAILURE_REASON)
    if run.status == "awaiting_approval":
        fields["approve_url"] = f"{base}/runs/{run.id}/approve"
    return fields


def message_body(
    *, event: WebhookEvent, at: datetime, run: Any, payload: dict[str, Any]
) -> dict[str, Any]:
    """The message of ``event`` (caused at ``at`` by a run event with ``payload``)."""
    project = run.project
    return {
        "type": event.name,
        "timestamp": _iso(at),
        "data": {
            "run": run_fields(run),
            "project": {"id": project.id, "name": project.name},
            **event.details(payload),
        },
    }
