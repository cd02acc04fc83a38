"""The delivery's Celery tasks: thin wrappers over ``pipeline.delivery.services``.

``pipeline.deliver_run`` carries a delivery's id and the attempt it was queued for; it is safe
to run twice (see the services). A transient failure (the remote or the forge unreachable,
too slow, answering 5xx) is tried again ``REPOSITORY_DELIVERY_RETRIES`` times with a growing
pause before the delivery fails.
"""

from __future__ import annotations

from celery import Task, shared_task
from django.conf import settings

from .services import DeliveryRetry, deliveries_resend, delivery_execute

RETRY_BASE_SECONDS = 5.0
RETRY_MAX_SECONDS = 120.0


@shared_task(bind=True, name="pipeline.deliver_run", ignore_result=True)
def deliver_run(self: Task, delivery_id: int, attempt: int) -> None:
    """Deliver a run: one commit on its branch, then its pull request (see the services)."""
    retries = self.request.retries or 0
    try:
        delivery_execute(
            delivery_id=delivery_id,
            attempt=attempt,
            last_try=retries >= settings.REPOSITORY_DELIVERY_RETRIES,
        )
    except DeliveryRetry:
        countdown = min(RETRY_BASE_SECONDS * 2**retries, RETRY_MAX_SECONDS)
        raise self.retry(
            countdown=countdown, max_retries=settings.REPOSITORY_DELIVERY_RETRIES
        ) from None


@shared_task(name="pipeline.deliveries_resend", ignore_result=True)
def resend_stale_deliveries() -> list[int]:
    """Beat: queue again the deliveries whose task was lost."""
    return deliveries_resend()
