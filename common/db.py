"""Queries on the hot path of every request, with their SQL compiled once per process.

Django compiles a QuerySet's SQL every time it is evaluated. For a small lookup that runs
on every request (the session behind an access token) the compiling costs several times
what sending the query and reading its row do: profiled under load it was the largest
single cost of authentication. ``PrecompiledQuery`` asks the ORM for the SQL once, then runs
it with new values and builds the model instances the way the ORM does (``from_db``, the
fields' database converters, ``select_related`` objects included).

Only for queries whose SQL does not depend on the values passed in (plain ``field=value``
filters): the values are bound in the order the ORM placed them, and must be of the types
the filter would have prepared (a ``uuid.UUID`` for a UUID column, an ``int`` for an id).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from django.db import DEFAULT_DB_ALIAS, connections
from django.db.models import Model, QuerySet
from django.db.models.query import get_related_populators

M = TypeVar("M", bound=Model)


@dataclass
class _Compiled:
    sql: str
    model: type[Model]
    init_list: list[str]
    start: int
    end: int
    converters: list[tuple[int, list[Callable[..., Any]], Any]]
    populators: list[Any]


class PrecompiledQuery(Generic[M]):
    """``build(*values)`` is the QuerySet; its SQL is compiled on first use, then reused."""

    def __init__(self, build: Callable[..., QuerySet[M]], *, using: str = DEFAULT_DB_ALIAS):
        self._build = build
        self._using = using
        self._compiled: _Compiled | None = None
        self._lock = threading.Lock()

    def _compile(self, values: Sequence[Any]) -> _Compiled:
        with self._lock:
            if self._compiled is None:
                compiler = self._build(*values).query.get_compiler(using=self._using)
                sql, _ = compiler.as_sql()
                select, klass_info = compiler.select, compiler.klass_info
                fields = klass_info["select_fields"]
                start, end = fields[0], fields[-1] + 1
                expressions = [column for column, _, _ in select]
                converters = compiler.get_converters(expressions)
                self._compiled = _Compiled(
                    sql=sql,
                    model=klass_info["model"],
                    init_list=[column[0].target.attname for column in select[start:end]],
                    start=start,
                    end=end,
                    converters=[(pos, convs, expr) for pos, (convs, expr) in converters.items()],
                    populators=get_related_populators(  # type: ignore[call-arg]
                        klass_info, select, self._using
                    ),
                )
            return self._compiled

    def all(self, *values: Any) -> list[M]:
        """The instances the QuerySet ``build(*values)`` would give."""
        compiled = self._compiled or self._compile(values)
        connection = connections[self._using]
        with connection.cursor() as cursor:
            cursor.execute(compiled.sql, list(values))
            rows = cursor.fetchall()
        found = []
        for raw in rows:
            row = list(raw)
            for pos, convs, expression in compiled.converters:
                for converter in convs:
                    row[pos] = converter(row[pos], expression, connection)
            obj = compiled.model.from_db(
                self._using, compiled.init_list, row[compiled.start : compiled.end]
            )
            for populator in compiled.populators:
                populator.populate(row, obj)
            found.append(obj)
        return found  # type: ignore[return-value]

    def first(self, *values: Any) -> M | None:
        """The first instance ``build(*values)`` would give, or None."""
        found = self.all(*values)
        return found[0] if found else None
