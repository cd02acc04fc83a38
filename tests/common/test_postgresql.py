"""A pooled connection whose backend ended while it sat idle is never handed out; a live
one is handed out without a round trip."""

import time
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from django.db import DataError, connection
from psycopg_pool import ConnectionPool

from common.postgresql.base import connection_check

pytestmark = pytest.mark.django_db


def _params() -> dict[str, Any]:
    params = connection.get_connection_params()
    params.pop("cursor_factory", None)
    return {**params, "autocommit": True}


@pytest.fixture
def pool() -> Iterator[ConnectionPool]:
    with ConnectionPool(
        kwargs=_params(), min_size=1, max_size=1, check=connection_check, timeout=10
    ) as opened:
        yield opened


def _terminate(pid: int) -> None:
    """End backend ``pid`` and wait until it is gone (its socket closed)."""
    with psycopg.connect(**_params()) as killer:
        killer.execute("SELECT pg_terminate_backend(%s)", (pid,))
        for _ in range(200):
            gone = killer.execute(
                "SELECT NOT EXISTS (SELECT 1 FROM pg_stat_activity WHERE pid = %s)", (pid,)
            )
            if gone.fetchone()[0]:
                return
            time.sleep(0.02)
    raise AssertionError(f"backend {pid} still there")


def test_the_django_pool_checks_its_connections_with_the_socket_check():
    assert connection.pool._check is connection_check


def test_a_connection_whose_backend_ended_while_idle_is_replaced(pool):
    with pool.connection() as conn:
        dead = conn.info.backend_pid
    _terminate(dead)

    with pool.connection() as conn:
        assert conn.info.backend_pid != dead
        assert conn.execute("SELECT 1").fetchone() == (1,)


def test_a_live_idle_connection_is_passed_without_a_query(pool):
    with pool.connection() as conn:
        pid = conn.info.backend_pid
        sent = []
        # What the check sends, if anything, goes through the connection's execute.
        original = conn.execute
        conn.execute = lambda *args, **kwargs: sent.append(args) or original(*args, **kwargs)
        connection_check(conn)
        assert sent == []
        conn.execute = original
    with pool.connection() as conn:
        assert conn.info.backend_pid == pid


TIMESTAMPS = [
    "2026-12-07 02:20:45.123456+00",
    "2026-12-07 02:20:45+00",
    "2026-03-29 01:30:00.12+05",
    "1850-01-01 00:00:00+00",
    "0099-01-01 00:00:00-03",
    "9999-12-31 10:00:00.999999+00",
    "0001-01-02 00:00:00+00",
]


@pytest.mark.parametrize("zone", ["UTC", "Asia/Kolkata", "America/St_Johns", "Europe/Amsterdam"])
def test_timestamps_read_as_djangos_own_loader_reads_them(zone):
    from django.conf import settings
    from django.db.backends.postgresql.psycopg_any import get_adapters_template

    sql = "SELECT " + ", ".join("%s::timestamptz" for _ in TIMESTAMPS)
    stock_params = {
        **_params(),
        "context": get_adapters_template(settings.USE_TZ, connection.timezone),
    }
    with psycopg.connect(**stock_params) as stock:
        stock.execute(f"SET TIME ZONE '{zone}'")
        expected = stock.execute(sql, TIMESTAMPS).fetchone()
    with connection.cursor() as cursor:
        cursor.execute(f"SET TIME ZONE '{zone}'")
        try:
            cursor.execute(sql, TIMESTAMPS)
            found = cursor.fetchone()
        finally:
            cursor.execute("SET TIME ZONE 'UTC'")

    assert found == expected
    assert [value.tzinfo for value in found] == [value.tzinfo for value in expected]
    assert [value.utcoffset() for value in found] == [value.utcoffset() for value in expected]


def test_a_timestamp_python_cannot_hold_fails_as_with_djangos_own_loader():
    with connection.cursor() as cursor, pytest.raises(DataError, match="before year 1"):
        cursor.execute("SELECT '2000-01-01 00:00:00 BC'::timestamptz")
        cursor.fetchone()
