"""Django's PostgreSQL backend, its pooled connections checked without a round trip.

With ``CONN_HEALTH_CHECKS`` Django has psycopg_pool check every connection as it leaves the
pool with an empty query: a round trip to PostgreSQL before each request's first statement,
about a tenth of the CPU of a small API request. ``connection_check`` asks the socket
instead. A backend that ends while its connection is idle in the pool (PostgreSQL restarted,
``pg_terminate_backend``, ``idle_session_timeout``) sends its last message and closes the
socket, which makes the socket readable; an idle connection that is still alive has nothing
to read (this application LISTENs on none). Only then is the empty query sent, and it fails
on the dead connection, which the pool replaces: such a connection is still never handed to
a request. A peer that vanished without a word (a host powered off) is not seen by either
check until TCP gives up, so nothing is lost there.
"""

from __future__ import annotations

import select
from typing import Any

from django.db.backends.postgresql import base
from psycopg_pool import ConnectionPool


def connection_check(conn: Any) -> None:
    """psycopg_pool's check, made only when the idle connection's socket has something to
    read (the last words of a backend that ended); quiet for a live one."""
    if conn.closed:
        raise ConnectionError("the connection is closed")
    poller = select.poll()
    poller.register(conn.fileno(), select.POLLIN | select.POLLERR | select.POLLHUP)
    if poller.poll(0):
        ConnectionPool.check_connection(conn)


class DatabaseWrapper(base.DatabaseWrapper):
    """Django's wrapper; its pool checks connections with ``connection_check``."""

    @property
    def pool(self) -> Any:
        pool = super().pool
        # The check Django gives the pool (with CONN_HEALTH_CHECKS), swapped once per pool.
        if pool is not None and pool._check is ConnectionPool.check_connection:
            pool._check = connection_check
        return pool
