"""Writes of spending that are not part of storing a call (that is the pipeline's ledger).

``spend_reservations_expire`` is the reaper's: a reservation whose call never settled (its
worker died between reserving and storing the answer) already counts for nothing once past
its ``until``; this takes it out of the row, so the window shows only calls in flight.
"""

from django.db import connection

from common.logging import get_logger

from .sql import CLOCK, held_expired, held_live

logger = get_logger(__name__)

_EXPIRE = (
    f"WITH {CLOCK} UPDATE spending_spendwindow AS w "  # noqa: S608 - fixed fragments
    f"SET reservations = {held_live('w.reservations')}, updated_at = statement_timestamp() "
    f"WHERE w.reservations <> '{{}}'::jsonb AND {held_expired('w.reservations')} "
    "RETURNING w.user_id"
)


def spend_reservations_expire() -> list[int]:
    """Drop every reservation past its ``until``; the users whose window changed."""
    with connection.cursor() as cursor:
        cursor.execute(_EXPIRE)
        users = [row[0] for row in cursor.fetchall()]
    if users:
        logger.warning("spending.reservations_expired", users=users)
    return users
