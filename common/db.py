"""Queries on the hot path of every request, with their SQL compiled once per process.

Django compiles a QuerySet's SQL every time it is evaluated. For a small lookup that runs
on every request (the session behind an access token) the compiling costs several times
what sending the query and reading its row do: profiled under load it was the largest
single cost of authentication. ``PrecompiledQuery`` asks the ORM for the SQL once, then runs
it with new values and builds the model instances the way the ORM does (``from_db``, the
fields' database converters, ``select_related`` objects and ``annotate`` values included).

``PrecompiledRows`` does the same for a ``values_list()`` QuerySet: it gives the tuples the
QuerySet would, its fields' database converters applied (JSON decoded, and so on).

Only for queries whose SQL does not depend on the values passed in (plain ``field=value``
filters, not ``__in`` a list): each value must reach the SQL unchanged (a ``uuid.UUID`` for a
UUID column, an ``int`` for an id), and any other parameter (``key__startswith="design:"``)
is a constant of the query. Which parameter is which value is read from a query compiled
for stand-in values, distinct from each other and from any constant (an ``int``, ``str`` or
``UUID`` each); with values of other types it is compiled for the values passed in, and while
that is ambiguous (two values equal, or a value equal to a constant), the QuerySet itself
runs, and the SQL is compiled again on the next call.
"""

from __future__ import annotations

import re
import threading
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from django.core.exceptions import EmptyResultSet, FullResultSet
from django.db import DEFAULT_DB_ALIAS, connections
from django.db.models import Model, QuerySet
from django.db.models.query import get_related_populators

M = TypeVar("M", bound=Model)


# Stand-ins for the values when the SQL is compiled: a run's id and its owner's id can be
# equal, and the values passed in then cannot be told apart among the parameters. Within
# the range of a 32-bit integer column (an exact lookup beyond it compiles to other SQL).
_STAND_IN_INT = 2_000_000_000


def _stand_ins(values: Sequence[Any]) -> list[Any]:
    """A value of the same type for each of ``values``, distinct from one another."""
    found: list[Any] = []
    for index, value in enumerate(values):
        kind = type(value)
        if kind is int:
            found.append(_STAND_IN_INT - index)
        elif kind is str:
            found.append(f"\u2063stand-in {index}\u2063")
        elif kind is uuid.UUID:
            found.append(uuid.uuid4())
        else:
            found.append(value)
    return found


def _slots(params: Sequence[Any], values: Sequence[Any]) -> list[tuple[int, int]] | None:
    """Where each value sits among the compiled query's parameters: ``(parameter position,
    value index)`` pairs; None when that cannot be told (a value found at no position or at
    several, or equal to another value)."""
    slots = []
    for index, value in enumerate(values):
        positions = [
            position
            for position, param in enumerate(params)
            if type(param) is type(value) and param == value
        ]
        if len(positions) != 1:
            return None
        slots.append((positions[0], index))
    if len({position for position, _ in slots}) != len(slots):
        return None
    return slots


@dataclass
class _Statement:
    """A compiled query: its SQL, its constant parameters, and where the values go."""

    sql: str
    params: list[Any]
    slots: list[tuple[int, int]]

    def bind(self, values: Sequence[Any]) -> list[Any]:
        params = list(self.params)
        for position, index in self.slots:
            params[position] = values[index]
        return params


def _statement(compiler: Any, values: Sequence[Any]) -> _Statement | None:
    """The compiler's query as a reusable statement (None when its values cannot be placed)."""
    sql, params = compiler.as_sql()
    slots = _slots(params, values)
    return None if slots is None else _Statement(sql, list(params), slots)


def _converted(
    rows: list[tuple[Any, ...]],
    converters: list[tuple[int, list[Callable[..., Any]], Any]],
    connection: Any,
) -> list[list[Any]]:
    """Each row as a list, with the fields' database converters applied (as the ORM does)."""
    found = []
    for raw in rows:
        row = list(raw)
        for pos, convs, expression in converters:
            for converter in convs:
                row[pos] = converter(row[pos], expression, connection)
        found.append(row)
    return found


@dataclass
class _Compiled:
    statement: _Statement
    model: type[Model]
    init_list: list[str]
    start: int
    end: int
    converters: list[tuple[int, list[Callable[..., Any]], Any]]
    populators: list[Any]
    annotations: list[tuple[str, int]]  # (attribute, column) of each annotation


@dataclass
class _CompiledRows:
    statement: _Statement
    converters: list[tuple[int, list[Callable[..., Any]], Any]]


C = TypeVar("C", _Compiled, _CompiledRows)
R = TypeVar("R")


class _Precompiled(Generic[C, R]):
    """``build(*values)`` is a QuerySet; its SQL is compiled on first use, then reused. When
    the values cannot be placed in the compiled SQL, the QuerySet itself runs that time."""

    def __init__(self, build: Callable[..., QuerySet[Any]], *, using: str = DEFAULT_DB_ALIAS):
        self._build = build
        self._using = using
        self._compiled: C | None = None
        self._lock = threading.Lock()

    def _prepare(self, compiler: Any, statement: _Statement) -> C | None:
        raise NotImplementedError

    def _compile(self, values: Sequence[Any]) -> C | None:
        with self._lock:
            if self._compiled is not None:
                return self._compiled
            stand_ins = _stand_ins(values)
            candidates: list[Sequence[Any]] = [stand_ins] if stand_ins != list(values) else []
            for candidate in [*candidates, values]:
                compiler = self._build(*candidate).query.get_compiler(using=self._using)
                try:
                    statement = _statement(compiler, candidate)
                except (EmptyResultSet, FullResultSet):
                    if candidate is values:
                        raise
                    continue  # a stand-in the query compiles differently (out of a range)
                if statement is not None:
                    self._compiled = self._prepare(compiler, statement)
                    return self._compiled
            return None

    def _fetch(self, compiled: C, values: Sequence[Any]) -> tuple[list[Any], Any]:
        """The compiled statement's raw rows for ``values``, and the connection."""
        connection = connections[self._using]
        # Sent over and over with the same SQL: prepared on the server (common.postgresql).
        with prepared_cursor(self._using) as cursor:
            cursor.execute(compiled.statement.sql, compiled.statement.bind(values))
            return cursor.fetchall(), connection

    def _read(self, compiled: C, values: Sequence[Any]) -> list[R]:
        raise NotImplementedError

    def all(self, *values: Any) -> list[R]:
        """What the QuerySet ``build(*values)`` would give, as a list."""
        compiled = self._compiled or self._compile(values)
        if compiled is None:
            return list(self._build(*values).using(self._using))
        return self._read(compiled, values)

    def first(self, *values: Any) -> R | None:
        """The first of ``all(*values)``, or None."""
        found = self.all(*values)
        return found[0] if found else None


class PrecompiledQuery(_Precompiled[_Compiled, M]):
    """``build(*values)`` is the QuerySet of model instances (``select_related`` and
    ``annotate`` too)."""

    def __init__(self, build: Callable[..., QuerySet[M]], *, using: str = DEFAULT_DB_ALIAS):
        super().__init__(build, using=using)

    def _prepare(self, compiler: Any, statement: _Statement) -> _Compiled:
        select, klass_info = compiler.select, compiler.klass_info
        fields = klass_info["select_fields"]
        start, end = fields[0], fields[-1] + 1
        expressions = [column for column, _, _ in select]
        converters = compiler.get_converters(expressions)
        return _Compiled(
            statement=statement,
            model=klass_info["model"],
            init_list=[column[0].target.attname for column in select[start:end]],
            start=start,
            end=end,
            converters=[(pos, convs, expr) for pos, (convs, expr) in converters.items()],
            populators=get_related_populators(  # type: ignore[call-arg]
                klass_info, select, self._using
            ),
            annotations=list(compiler.annotation_col_map.items()),
        )

    def _read(self, compiled: _Compiled, values: Sequence[Any]) -> list[M]:
        rows, connection = self._fetch(compiled, values)
        found = []
        for row in _converted(rows, compiled.converters, connection):
            obj = compiled.model.from_db(
                self._using, compiled.init_list, row[compiled.start : compiled.end]
            )
            for populator in compiled.populators:
                populator.populate(row, obj)
            for attribute, column in compiled.annotations:
                setattr(obj, attribute, row[column])
            found.append(obj)
        return found  # type: ignore[return-value]


class PrecompiledRows(_Precompiled[_CompiledRows, tuple[Any, ...]]):
    """``build(*values)`` is a ``values_list()`` QuerySet (not ``flat``, not ``named``)."""

    def _prepare(self, compiler: Any, statement: _Statement) -> _CompiledRows | None:
        expressions = [column for column, _, _ in compiler.select[: compiler.col_count]]
        if compiler.has_composite_fields(expressions):
            return None
        converters = compiler.get_converters(expressions)
        return _CompiledRows(
            statement=statement,
            converters=[(pos, convs, expr) for pos, (convs, expr) in converters.items()],
        )

    def _read(self, compiled: _CompiledRows, values: Sequence[Any]) -> list[tuple[Any, ...]]:
        rows, connection = self._fetch(compiled, values)
        if not compiled.converters:
            return [tuple(row) for row in rows]
        return [tuple(row) for row in _converted(rows, compiled.converters, connection)]


def prepared_cursor(using: str = DEFAULT_DB_ALIAS) -> Any:
    """A cursor that binds on the server and has each statement prepared once per connection
    (``common.postgresql``, with ``DB_PREPARE_STATEMENTS``); the plain cursor otherwise. For
    statements sent over and over with the same text, whose placeholders are typed."""
    connection = connections[using]
    return getattr(connection, "prepared_cursor", connection.cursor)()


# A quoted literal (its '' escapes included), or outside one: a parenthesis or comma with the
# whitespace around it, or a run of whitespace.
_LITERAL_OR_SPACE = re.compile(r"'(?:[^']|'')*'|\s*([(),])\s*|\s+")


def compact_sql(sql: str) -> str:
    """``sql`` with every run of whitespace outside quoted literals made one space, and none
    left beside a parenthesis or a comma.

    psycopg caches how it turns a statement's ``%(name)s`` placeholders into its wire form
    only for statements up to 4,096 bytes (``MAX_CACHED_STATEMENT_LENGTH``); a longer one is
    parsed again on every execution. The project's long statements are written indented for
    reading and sent compact. A comment would swallow the rest of a compacted statement, so
    one is refused.
    """
    if "--" in sql or "/*" in sql:
        raise ValueError("compact_sql: a statement with a comment cannot be made one line")
    return _LITERAL_OR_SPACE.sub(_compacted, sql).strip()


def _compacted(match: re.Match[str]) -> str:
    text = match.group()
    if text.startswith("'"):
        return text
    return match.group(1) or " "
