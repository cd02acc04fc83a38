"""Counting the SQL statements each run sends, for ``make bench`` (``BENCH_COUNT_STATEMENTS``).

Off by default, and then nothing here runs. On, every database connection a process opens
gets an execute wrapper (``connection.execute_wrappers``) that counts each statement Django
sends through a cursor (queries and savepoints; ``BEGIN`` and ``COMMIT`` go through the
driver and are not counted; an ``executemany`` counts once per parameter set) against the
run the current Celery task works for, or ``other`` (web requests, beat, tasks of no run).
Counts are kept in the process and added to one Redis hash (``STATEMENTS_KEY``: field = run
id or ``other``) when a task or a web request ends, so the bench reads every process's
counts in one place.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from typing import Any

STATEMENTS_KEY = "aiflow:bench:statements"
OTHER = "other"

_local = threading.local()
_lock = threading.Lock()
_counts: Counter[str] = Counter()


def _count(
    execute: Callable[..., Any], sql: str, params: Any, many: bool, context: dict[str, Any]
) -> Any:
    key = getattr(_local, "run", None) or OTHER
    number = len(params) if many and isinstance(params, (list, tuple)) else 1
    with _lock:
        _counts[key] += number
    return execute(sql, params, many, context)


def _on_connection_created(sender: Any = None, connection: Any = None, **_: Any) -> None:
    # A pooled wrapper connects again after a failure: wrap it once.
    if connection is not None and _count not in connection.execute_wrappers:
        connection.execute_wrappers.append(_count)


def statements_bind_run(run_id: int | None) -> None:
    """Count this thread's statements against ``run_id`` (None: ``other``) from now on."""
    _local.run = str(run_id) if run_id is not None else None


def statements_flush(**_: Any) -> None:
    """Add what this process counted since the last flush to the Redis hash."""
    with _lock:
        pending = dict(_counts)
        _counts.clear()
    if not pending:
        return
    from providers.redis_client import get_redis

    try:
        pipe = get_redis().pipeline(transaction=False)
        for key, number in pending.items():
            pipe.hincrby(STATEMENTS_KEY, key, number)
        pipe.execute()
    except Exception:  # a figure, never a failure: keep the counts for the next flush
        with _lock:
            _counts.update(pending)


def statements_install() -> None:
    """Count from now on in this process (connections opened before are not wrapped)."""
    from django.core.signals import request_finished
    from django.db.backends.signals import connection_created

    connection_created.connect(_on_connection_created, dispatch_uid="bench-statements")
    request_finished.connect(statements_flush, dispatch_uid="bench-statements-flush")


def statements_read(client: Any) -> dict[str, int]:
    """The counts so far, by run id (and ``other``), from ``client`` (a Redis client)."""
    raw = client.hgetall(STATEMENTS_KEY)
    return {
        (k.decode() if isinstance(k, bytes) else k): int(v)
        for k, v in raw.items()  # type: ignore[union-attr]
    }
