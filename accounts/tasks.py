"""Periodic housekeeping of the accounts part (scheduled by ACCOUNTS_BEAT_SCHEDULE)."""

from celery import shared_task

from . import services


@shared_task(name="accounts.tasks.accounts_expire", ignore_result=True)
def accounts_expire() -> dict[str, int]:
    """Delete long-dead sessions, spent OAuth codes, expired outstanding tokens and sids."""
    return services.accounts_expire()


@shared_task(name="accounts.tasks.unverified_accounts_expire", ignore_result=True)
def unverified_accounts_expire() -> int:
    """Delete the accounts nobody verified within ACCOUNTS_UNVERIFIED_DAYS."""
    return services.unverified_accounts_expire()
