"""A prefork worker's process keeps its database pool from one task to the next
(``config.django_fixup``): Celery 5.7 closed it at every task boundary, so each task opened
its connections again and PostgreSQL started a backend for each."""

from types import SimpleNamespace
from typing import Any

import pytest
from celery.fixups.django import DjangoWorkerFixup
from django.db import connection

from config.celery import app

pytestmark = pytest.mark.django_db(transaction=True)


def _prefork_fixup() -> DjangoWorkerFixup:
    fixup = DjangoWorkerFixup(app)
    fixup.worker = SimpleNamespace(pool_cls="celery.concurrency.prefork:TaskPool")
    return fixup


def _task() -> Any:
    return SimpleNamespace(request=SimpleNamespace(is_eager=False))


def _backend() -> int:
    connection.ensure_connection()
    return int(connection.connection.info.backend_pid)


def test_a_prefork_process_gives_its_connection_back_to_the_pool_and_keeps_the_pool() -> None:
    fixup = _prefork_fixup()
    backends, pool = {_backend()}, connection.pool
    assert pool is not None
    opened = pool.get_stats().get("connections_num", 0)

    for _ in range(3):  # three tasks, one after another in one process
        fixup.on_task_prerun(sender=_task())
        assert connection.connection is None  # back in the pool between the boundaries
        backends.add(_backend())
        fixup.on_task_postrun(sender=_task())
        assert connection.connection is None

    assert connection.pool is pool
    assert not pool.closed
    # No connection opened for the tasks: each took one the pool held.
    assert pool.get_stats().get("connections_num", 0) == opened
    assert len(backends) <= pool.get_stats()["pool_size"]


def test_a_process_still_closes_the_pool_it_inherited_when_it_starts() -> None:
    fixup = _prefork_fixup()
    _backend()
    pool = connection.pool

    fixup.on_worker_process_init()

    assert pool.closed  # inherited through fork: its sockets are the parent's
    assert connection.pool is not pool
    assert _backend() > 0


def test_with_db_reuse_max_celery_keeps_its_own_behaviour(settings: Any) -> None:
    fixup = _prefork_fixup()
    fixup.db_reuse_max = 2
    backend = _backend()

    fixup.on_task_postrun(sender=_task())

    assert _backend() == backend  # Celery's: kept open for the next task
