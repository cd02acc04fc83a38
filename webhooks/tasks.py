"""Celery tasks of webhooks: one attempt of a delivery, and the beat's sweep."""

from celery import shared_task

from .services import deliveries_sweep, delivery_attempt


@shared_task(name="webhooks.deliver", ignore_result=True)
def deliver(delivery_id: int) -> None:
    """Send delivery ``delivery_id`` if it is due and nobody holds it (safe to run twice)."""
    delivery_attempt(delivery_id=delivery_id)


@shared_task(name="webhooks.sweep", ignore_result=True)
def sweep() -> dict[str, int]:
    """Beat: resend attempts whose worker died, queue due deliveries whose message is lost."""
    return deliveries_sweep()
