"""Webhooks: endpoints made and removed, deliveries written, sent, retried and swept.

A delivery's life, every step a conditional update on its row:

- **written** with the run event that causes it (``deliveries_create_for_events``, called in
  the event's transaction), ``pending`` and due at once; its task is queued on commit;
- **claimed** by the task (``pending`` and due -> ``sending``, attempts + 1, a lease), sent
  through ``common.outbound`` with a fresh signature, then **recorded**: ``delivered`` on a
  2xx, ``failed`` at once when the address is refused, else ``pending`` again with the next
  attempt ``WEBHOOKS_RETRY_BASE_SECONDS`` x 4^(n-1) later (at most
  ``WEBHOOKS_RETRY_MAX_DELAY_SECONDS``), until the next one would fall past
  ``WEBHOOKS_RETRY_WINDOW_SECONDS`` after the event: then ``failed``;
- **swept** by beat (``deliveries_sweep``): an attempt whose worker died (lease run out) is
  sent again, and a due delivery whose task message is missing gets one.

At least once: an attempt that reached the receiver but whose worker died before recording it
is sent again, with the same ``webhook-id`` (and body), so the receiver can drop it.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from common import outbound, secrets
from common.errors import ApplicationError, Conflict
from common.logging import get_logger
from pipeline.faults import fault_point
from pipeline.models import Event, Run

from .catalogue import EVENTS, events_for_source, message_body
from .models import Delivery, Endpoint
from .signing import secret_generate, signed_headers

logger = get_logger(__name__)

# Each retry waits this many times longer than the one before.
RETRY_FACTOR = 4
# The longest countdown a retry's task message is sent with; a longer wait is left to the
# sweeper (countdowns stay far below the broker's visibility timeout).
COUNTDOWN_SWEEPS = 10
# A due delivery whose task message is older than this many sweeps is given another one.
LOST_SWEEPS = 20
# Deliveries the sweeper queues at most per pass (the next pass takes the rest).
SWEEP_BATCH = 500
# An attempt's error when no configured key opens the endpoint's secret.
ENDPOINT_UNREADABLE = (
    "The endpoint's secret cannot be read with the configured keys; create the endpoint again."
)


# --- endpoints ------------------------------------------------------------------------------


def _events_validate(events: Any) -> list[str]:
    if not isinstance(events, list | tuple) or not events:
        raise ApplicationError(
            f"Name at least one event: {', '.join(EVENTS)}.", code="invalid_events"
        )
    unknown = [str(name) for name in events if name not in EVENTS]
    if unknown:
        raise ApplicationError(
            f"Unknown event(s): {', '.join(unknown)}; known: {', '.join(EVENTS)}.",
            code="invalid_events",
        )
    return list(dict.fromkeys(events))


def endpoint_url_check(url: str) -> str:
    """``url`` if a delivery may go there now: the scheme, the host and every address it
    resolves to pass ``webhooks_policy`` (checked again at every attempt)."""
    url = (url or "").strip()
    if not url:
        raise ApplicationError("Give the endpoint's URL.", code="invalid_url")
    if len(url) > Endpoint._meta.get_field("url").max_length:  # type: ignore[operator]
        raise ApplicationError("The URL is too long.", code="invalid_url")
    policy = outbound.webhooks_policy()
    target = outbound.check_url(url, policy)
    try:
        outbound.resolve_checked(target, policy)
    except outbound.OutboundFailed as exc:
        raise ApplicationError(exc.detail, code="unresolvable") from exc
    return url


def endpoint_create(*, project: Any, url: str, events: Any) -> tuple[Endpoint, str]:
    """A new endpoint of ``project`` and its signing secret (shown once, stored encrypted).

    Refused (400) when the URL is not one a delivery may reach (``outbound_refused``), the
    events are unknown, or the project has ``WEBHOOKS_MAX_ENDPOINTS_PER_PROJECT`` already.
    """
    names = _events_validate(events)
    url = endpoint_url_check(url)
    secret = secret_generate()
    with transaction.atomic():
        # Counted under the project's lock, so two requests cannot both take the last place.
        type(project).objects.select_for_update().filter(id=project.id).first()
        if Endpoint.objects.filter(project=project).count() >= (
            settings.WEBHOOKS_MAX_ENDPOINTS_PER_PROJECT
        ):
            raise ApplicationError(
                f"A project may have at most {settings.WEBHOOKS_MAX_ENDPOINTS_PER_PROJECT} "
                "webhook endpoints.",
                code="too_many_endpoints",
            )
        endpoint = Endpoint.objects.create(
            project=project, url=url, events=names, secret_encrypted=secrets.encrypt(secret)
        )
    logger.info("webhook.endpoint_created", endpoint_id=endpoint.id, project_id=project.id)
    return endpoint, secret


def endpoint_delete(*, endpoint: Endpoint) -> None:
    """Remove the endpoint and its deliveries (an attempt in flight finds nothing to record)."""
    endpoint_id = endpoint.id
    endpoint.delete()
    logger.info("webhook.endpoint_deleted", endpoint_id=endpoint_id)


# --- deliveries written with their event ----------------------------------------------------


def _queue_on_commit(delivery_ids: list[int], countdown: float | None = None) -> None:
    def send() -> None:
        from .tasks import deliver

        for delivery_id in delivery_ids:
            try:
                if countdown is None:
                    deliver.apply_async((delivery_id,))
                else:
                    deliver.apply_async((delivery_id,), countdown=countdown)
            except Exception:  # the sweeper sends it (its ``queued_at`` goes stale)
                logger.warning("webhook.queue_failed", delivery_id=delivery_id, exc_info=True)

    if delivery_ids:
        transaction.on_commit(send)


def deliveries_create_for_events(events: list[Event]) -> list[Delivery]:
    """The deliveries of stored run events, one per listening endpoint and webhook event.

    Called by ``pipeline.events`` in the transaction that stores the events. Every endpoint
    of one event gets the same ``webhook-id`` and the same body.
    """
    if not events:
        return []
    runs: dict[int, Run] = {}
    created: list[Delivery] = []
    now = timezone.now()
    for event in events:
        for kind in events_for_source(event.type):
            endpoints = list(
                Endpoint.objects.filter(
                    project__runs__id=event.run_id, events__contains=[kind.name]
                ).only("id")
            )
            if not endpoints:
                continue
            if event.run_id not in runs:
                runs[event.run_id] = Run.objects.select_related("project").get(id=event.run_id)
            body = message_body(
                event=kind, at=event.at, run=runs[event.run_id], payload=event.payload or {}
            )
            text = _body_text(body)
            message_id = f"msg_{uuid.uuid4().hex}"
            created += Delivery.objects.bulk_create(
                Delivery(
                    endpoint_id=endpoint.id,
                    event=kind.name,
                    message_id=message_id,
                    run_id=event.run_id,
                    body=text,
                    window_started_at=now,
                    next_attempt_at=now,
                    queued_at=now,
                )
                for endpoint in endpoints
            )
    _queue_on_commit([delivery.id for delivery in created])
    return created


def _body_text(body: dict[str, Any]) -> str:
    import json

    return json.dumps(body, separators=(",", ":"), ensure_ascii=False, sort_keys=True)


# --- one attempt ----------------------------------------------------------------------------


def retry_delay(attempts: int) -> float:
    """Seconds to wait after the ``attempts``-th failed attempt."""
    base = float(settings.WEBHOOKS_RETRY_BASE_SECONDS)
    cap = float(settings.WEBHOOKS_RETRY_MAX_DELAY_SECONDS)
    exponent = min(max(attempts - 1, 0), 32)
    return min(base * RETRY_FACTOR**exponent, cap)


def retry_schedule() -> list[float]:
    """Seconds after the event of every attempt the settings allow (the first is 0)."""
    window = float(settings.WEBHOOKS_RETRY_WINDOW_SECONDS)
    offsets = [0.0]
    while offsets[-1] + retry_delay(len(offsets)) <= window:
        offsets.append(offsets[-1] + retry_delay(len(offsets)))
    return offsets


def _lease() -> timedelta:
    return timedelta(
        seconds=2 * float(settings.WEBHOOKS_TIMEOUT_SECONDS) + settings.WEBHOOKS_SWEEP_SECONDS
    )


class _Outcome:
    """What one attempt came to: the answer's status, and whether to try again."""

    def __init__(self, *, code: int | None, error: str = "", retry: bool = False):
        self.code = code
        self.error = error[:500]
        self.retry = retry

    @property
    def delivered(self) -> bool:
        return self.code is not None and 200 <= self.code < 300


def _send(url: str, headers: dict[str, str], body: str) -> _Outcome:
    try:
        answer = outbound.request(
            "POST", url, policy=outbound.webhooks_policy(), headers=headers, content=body.encode()
        )
    except outbound.OutboundRefused as exc:
        return _Outcome(code=None, error=f"Refused: {exc.detail}")
    except outbound.OutboundFailed as exc:
        error = exc.detail
        if exc.code == "too_many_redirects":
            error = "The endpoint answered with a redirect; deliveries do not follow redirects."
        return _Outcome(code=None, error=error, retry=True)
    except Exception:  # recorded as a failed attempt, so the retry window still bounds it
        logger.exception("webhook.send_crashed")
        return _Outcome(code=None, error="The attempt failed unexpectedly.", retry=True)
    if 200 <= answer.status < 300:
        return _Outcome(code=answer.status)
    return _Outcome(code=answer.status, error=f"The endpoint answered {answer.status}.", retry=True)


def delivery_attempt(*, delivery_id: int) -> str | None:
    """Send a due delivery once and record how it went; its new status, or None when it was
    not this caller's to send (not due, held by another attempt, finished or deleted)."""
    now = timezone.now()
    claimed = Delivery.objects.filter(
        id=delivery_id, status=Delivery.Status.PENDING, next_attempt_at__lte=now
    ).update(
        status=Delivery.Status.SENDING,
        attempts=F("attempts") + 1,
        last_attempt_at=now,
        lease_until=now + _lease(),
        queued_at=None,
    )
    if not claimed:
        return None
    delivery = Delivery.objects.select_related("endpoint").filter(id=delivery_id).first()
    if delivery is None:  # the endpoint was deleted meanwhile
        return None
    try:
        secret = secrets.decrypt(delivery.endpoint.secret_encrypted)
    except secrets.SecretUnreadable:
        return _record(delivery, _Outcome(code=None, error=ENDPOINT_UNREADABLE))
    at = timezone.now()
    headers = signed_headers(
        secret=secret.reveal(), message_id=delivery.message_id, at=at, body=delivery.body
    )
    # No database connection is held while the far side takes its time.
    _release_connection()
    outcome = _send(delivery.endpoint.url, headers, delivery.body)
    # A fault test may hold the worker here (the receiver has the message, nothing recorded).
    fault_point("webhook_sent", step_key=f"delivery:{delivery.id}")
    return _record(delivery, outcome)


def _release_connection() -> None:
    from django.db import connection

    if not connection.in_atomic_block:
        connection.close()


def _record(delivery: Delivery, outcome: _Outcome) -> str | None:
    now = timezone.now()
    fields: dict[str, Any] = {
        "response_code": outcome.code,
        "error": outcome.error,
        "lease_until": None,
    }
    countdown = None
    if outcome.delivered:
        fields.update(status=Delivery.Status.DELIVERED, delivered_at=now, next_attempt_at=None)
    elif outcome.retry:
        delay = retry_delay(delivery.attempts)
        window_end = delivery.window_started_at + timedelta(
            seconds=float(settings.WEBHOOKS_RETRY_WINDOW_SECONDS)
        )
        if now + timedelta(seconds=delay) > window_end:
            fields.update(status=Delivery.Status.FAILED, next_attempt_at=None)
            fields["error"] = (
                f"{outcome.error} Given up after {delivery.attempts} attempt(s): the retry "
                "window ended."
            )[:500]
        else:
            fields.update(
                status=Delivery.Status.PENDING, next_attempt_at=now + timedelta(seconds=delay)
            )
            if delay <= COUNTDOWN_SWEEPS * settings.WEBHOOKS_SWEEP_SECONDS:
                countdown = delay
                fields["queued_at"] = now
    else:
        fields.update(status=Delivery.Status.FAILED, next_attempt_at=None)
    with transaction.atomic():
        # Only the holder of this attempt records it (a sweeper may have taken it back).
        recorded = Delivery.objects.filter(
            id=delivery.id, status=Delivery.Status.SENDING, attempts=delivery.attempts
        ).update(**fields)
        if recorded and countdown is not None:
            _queue_on_commit([delivery.id], countdown=countdown)
    if not recorded:
        return None
    logger.info(
        "webhook.attempted",
        delivery_id=delivery.id,
        endpoint_id=delivery.endpoint_id,
        webhook_event=delivery.event,
        attempt=delivery.attempts,
        status=fields["status"],
        response_code=outcome.code,
    )
    return str(fields["status"])


# --- redeliver and sweep --------------------------------------------------------------------


def delivery_redeliver(*, delivery: Delivery) -> Delivery:
    """Send the message again at once, with the same ``webhook-id`` and body: a new series
    of attempts (counted from 0) in a new retry window; 409 while an attempt is in flight."""
    now = timezone.now()
    with transaction.atomic():
        updated = (
            Delivery.objects.filter(id=delivery.id)
            .exclude(status=Delivery.Status.SENDING)
            .update(
                status=Delivery.Status.PENDING,
                next_attempt_at=now,
                window_started_at=now,
                queued_at=now,
                delivered_at=None,
                attempts=0,
            )
        )
        if not updated:
            raise Conflict(
                "An attempt of this delivery is in flight; try again in a moment.",
                code="delivery_in_flight",
            )
        _queue_on_commit([delivery.id])
    delivery.refresh_from_db()
    logger.info("webhook.redelivered", delivery_id=delivery.id)
    return delivery


def deliveries_sweep(*, now: datetime | None = None) -> dict[str, int]:
    """Beat: send again the attempts whose worker died, and queue due deliveries whose task
    message is missing (or long overdue). Counts of both."""
    now = now or timezone.now()
    sweep = float(settings.WEBHOOKS_SWEEP_SECONDS)
    reclaimed = Delivery.objects.filter(status=Delivery.Status.SENDING, lease_until__lt=now).update(
        status=Delivery.Status.PENDING,
        next_attempt_at=now,
        queued_at=None,
        lease_until=None,
        error="The worker sending it stopped before it was recorded; it is sent again.",
    )
    lost = now - timedelta(seconds=LOST_SWEEPS * sweep)
    due = list(
        Delivery.objects.filter(status=Delivery.Status.PENDING, next_attempt_at__lte=now)
        .filter(Q(queued_at__isnull=True) | Q(queued_at__lt=lost))
        .order_by("next_attempt_at")
        .values_list("id", flat=True)[:SWEEP_BATCH]
    )
    if due:
        with transaction.atomic():
            Delivery.objects.filter(id__in=due).update(queued_at=now)
            _queue_on_commit(due)
    if reclaimed or due:
        logger.warning("webhook.swept", reclaimed=reclaimed, queued=len(due))
    return {"reclaimed": reclaimed, "queued": len(due)}
