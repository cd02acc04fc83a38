"""Django's PostgreSQL backend: pooled connections checked without a round trip, and
``timestamptz`` values parsed by ``datetime.fromisoformat``.

With ``CONN_HEALTH_CHECKS`` Django has psycopg_pool check every connection as it leaves the
pool with an empty query: a round trip to PostgreSQL before each request's first statement,
5-8% of the CPU of a small API request. ``connection_check`` asks the socket
instead. A backend that ends while its connection is idle in the pool (PostgreSQL restarted,
``pg_terminate_backend``, ``idle_session_timeout``) sends its last message and closes the
socket, which makes the socket readable; an idle connection that is still alive has nothing
to read (this application LISTENs on none). Only then is the empty query sent, and it fails
on the dead connection, which the pool replaces: such a connection is still never handed to
a request. A peer that vanished without a word (a host powered off) is not seen by either
check until TCP gives up, so nothing is lost there.

Django reads a ``timestamptz`` with psycopg's pure-Python text loader (its own subclass,
which sets Django's time zone), even with psycopg's C extension: a regular expression and
a dozen ``int()`` calls per value: 7-8 microseconds each, 0.3 ms for the 40 date-times of
``GET /projects``' 20 rows on a busy two-core machine.
``IsoTzLoader`` hands PostgreSQL's ISO text to ``datetime.fromisoformat`` (C, 3 microseconds)
and gives the very same datetime; anything it cannot read (``infinity``, BC dates, another
DateStyle) goes to the original loader.
"""

from __future__ import annotations

import functools
import select
from datetime import datetime, tzinfo
from typing import Any

import psycopg
from django.conf import settings
from django.db.backends.postgresql import base, operations
from django.db.backends.postgresql.psycopg_any import (
    BaseTzLoader,
    get_adapters_template,
    register_tzloader,
)
from django.utils.asyncio import async_unsafe
from psycopg import adapt
from psycopg.postgres import types as postgres_types
from psycopg.pq import Format
from psycopg.types.datetime import TimestamptzLoader
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


class IsoTzLoader(BaseTzLoader):
    """Django's ``timestamptz`` text loader, reading ISO values with ``fromisoformat``."""

    def __init__(self, oid: int, context: Any = None) -> None:
        super().__init__(oid, context)
        self._iso = self._load_method is TimestamptzLoader._load_iso

    def load(self, data: Any) -> datetime:
        if self._iso:
            try:
                value = datetime.fromisoformat(bytes(data).decode())
            except ValueError:
                value = None
            if value is not None and value.tzinfo is not None:
                try:
                    # psycopg's value is in the connection's zone; Django then sets its own.
                    local = value.astimezone(self._timezone)
                except OverflowError:  # the far ends of the calendar: psycopg decides
                    local = None
                if local is not None:
                    return local.replace(tzinfo=self.timezone)
        return super().load(data)  # type: ignore[no-any-return]


@functools.cache
def _adapters(use_tz: bool, zone: tzinfo | None) -> adapt.AdaptersMap:
    """Django's adapters for ``(use_tz, zone)``, with ``IsoTzLoader`` for ``timestamptz``."""
    adapters = adapt.AdaptersMap(get_adapters_template(use_tz, zone))
    loader = type("ZoneIsoTzLoader", (IsoTzLoader,), {"timezone": zone, "__module__": __name__})
    adapters.register_loader("timestamptz", loader)
    return adapters


_TIMESTAMPTZ_OID = postgres_types["timestamptz"].oid
_PSYCOPG_PREPARE_THRESHOLD = 5  # psycopg's own default


class DatabaseOperations(operations.DatabaseOperations):
    """Django's, but for the text of a statement bound on the server (``prepared_cursor``),
    which psycopg does not keep: the statement as a client-side binding would have sent it.
    Asked only where Django records statements (``DEBUG``, the tests' query capture)."""

    def last_executed_query(self, cursor: Any, sql: Any, params: Any) -> str:
        if isinstance(cursor, PreparingCursor):
            try:
                return str(self.compose_sql(sql, params))
            except psycopg.errors.DataError:  # a value psycopg cannot write out: the template
                return str(sql)
        return super().last_executed_query(cursor, sql, params)  # type: ignore[no-any-return]


class DatabaseWrapper(base.DatabaseWrapper):
    """Django's wrapper; its pool checks connections with ``connection_check``, its
    connections read ``timestamptz`` with ``IsoTzLoader``."""

    ops_class = DatabaseOperations

    def get_connection_params(self) -> dict[str, Any]:
        params = super().get_connection_params()
        params["context"] = _adapters(settings.USE_TZ, self.timezone)
        if settings.DB_PREPARE_STATEMENTS and params.get("prepare_threshold") is None:
            # psycopg prepares nothing while it is None (Django's default). Django's cursors
            # bind on the client and never prepare; ``prepared_cursor``'s prepare at once.
            params["prepare_threshold"] = _PSYCOPG_PREPARE_THRESHOLD
        return params

    @async_unsafe
    def prepared_cursor(self) -> Any:
        """``cursor()``, binding on the server and preparing each statement (with
        ``DB_PREPARE_STATEMENTS``; else the plain cursor): for statements the ORM compiled
        once and sends over and over (``common.db``). Only there: Django's other SQL and the
        project's own are written for client-side binding (``%s`` left untyped)."""
        if not settings.DB_PREPARE_STATEMENTS:
            return self.cursor()
        self.close_if_health_check_failed()
        self.ensure_connection()
        with self.wrap_database_errors:
            cursor = PreparingCursor(self.connection)
            # As Django's create_cursor: its time zone when the connection's differs.
            loader = self.connection.adapters.get_loader(_TIMESTAMPTZ_OID, Format.TEXT)
            if self.timezone != loader.timezone:
                register_tzloader(self.timezone, cursor)
            return self._prepare_cursor(cursor)  # type: ignore[attr-defined]  # not in the stubs

    @property
    def pool(self) -> Any:
        pool = super().pool
        # The check Django gives the pool (with CONN_HEALTH_CHECKS), swapped once per pool.
        if pool is not None and pool._check is ConnectionPool.check_connection:
            pool._check = connection_check
        return pool


class PreparingCursor(psycopg.Cursor):
    """Binds its parameters on the server and has PostgreSQL prepare each statement the
    first time this connection sends it (psycopg keeps the last ``prepared_max`` per
    connection): then it is neither parsed nor planned again."""

    def execute(  # type: ignore[override]
        self, query: Any, params: Any = None, *, prepare: bool | None = None, binary: Any = None
    ) -> Any:
        return super().execute(
            query, params, prepare=True if prepare is None else prepare, binary=binary
        )
