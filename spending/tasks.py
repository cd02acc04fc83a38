"""Spending's periodic task."""

from celery import shared_task

from .services import spend_reservations_expire


@shared_task(name="spending.expire_reservations", ignore_result=True)
def expire_reservations() -> list[int]:
    """Beat: drop the reservations of calls that never settled (their holder died)."""
    return spend_reservations_expire()
