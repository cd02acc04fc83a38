"""Transient infrastructure errors: a lost database or Redis connection, not a failed step.

PostgreSQL restarting or killing a backend, a pooled connection found dead, Redis restarting
for a moment: each raises in whatever statement met it, anywhere in a stage. None of them
says anything about the step's work, so none may fail a step or a run. What meets one
retries the operation (``retry_transient``) or hands the step back (the task is retried;
the step's stored answers are replayed, never bought again), and the reaper covers
whatever could not be handed back.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

import django.db
import kombu.exceptions
import psycopg
import psycopg_pool
import redis.exceptions

from common.logging import get_logger

logger = get_logger(__name__)

T = TypeVar("T")

_TRANSIENT: tuple[type[BaseException], ...] = (
    django.db.OperationalError,  # connection lost, server shutting down, pool exhausted
    django.db.InterfaceError,  # the connection was already closed
    psycopg.OperationalError,
    psycopg_pool.PoolTimeout,
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    kombu.exceptions.OperationalError,  # the broker could not be reached
    ConnectionError,  # refused, reset, aborted
)


def drop_connection() -> None:
    """Forget this thread's database connection after a failure (the pool discards a dead one)."""
    try:
        django.db.connection.close()
    except Exception:  # closing a dead connection may fail too; it is forgotten either way
        logger.info("db.connection_dropped")


def is_transient(exc: BaseException) -> bool:
    """Whether ``exc`` (or what it was raised from) is a lost connection to infrastructure.

    Only explicit causes (``raise ... from``) count: an error raised while handling a lost
    connection is an error of its own.
    """
    seen: BaseException | None = exc
    for _ in range(8):
        if seen is None:
            return False
        if isinstance(seen, _TRANSIENT):
            return True
        seen = seen.__cause__
    return False


def retry_transient(
    operation: Callable[[], T],
    *,
    what: str,
    attempts: int = 8,
    first_delay: float = 0.1,
    max_delay: float = 2.0,
    before_retry: Callable[[], None] | None = None,
) -> T:
    """``operation()``, tried again after a transient error (backoff, at most ``attempts``).

    Before each new attempt this thread's database connection is dropped (it may be the dead
    one), or ``before_retry`` runs instead. Never call it inside a transaction: the attempt
    that failed took the transaction with it. Any other error, or the last transient one,
    is raised.
    """
    delay = first_delay
    for attempt in range(1, attempts + 1):
        try:
            return operation()
        except Exception as exc:
            if attempt == attempts or not is_transient(exc):
                raise
            logger.warning(
                "infra.transient_error",
                operation=what,
                attempt=attempt,
                error=f"{type(exc).__name__}: {exc}"[:300],
            )
        time.sleep(delay)
        delay = min(delay * 2, max_delay)
        (before_retry or drop_connection)()
    raise AssertionError("unreachable")  # pragma: no cover
