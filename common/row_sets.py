"""Row sets read as JSON columns of another query: one statement where there were several.

Each statement a request sends costs the process about 0.1 ms of CPU before its rows are
even read (measured: a prepared ``SELECT 1`` through psycopg is 0.10 ms, through Django's
cursor 0.14 ms), and PostgreSQL its own share. ``GET /runs/{id}`` read the run, then its
steps, its plan tasks, its messages, two trees and an import record, one statement each.
``json_rows`` turns each of those reads into a column of the run's own query: PostgreSQL
aggregates the rows into one JSON list, which the process decodes once.

``json_rows(queryset, *fields, order_by=...)`` is the column: a list of ``[value, ...]``, one
per row, in ``order_by``'s order, or NULL where there are none (``rows_of`` reads it back as
a list). ``queryset`` refers to the outer query's row with ``OuterRef``.

``json_row(sql, params)`` is one row of a table picked by a SQL subquery, as a JSON object
keyed by column; ``instance_of`` builds the model instance the ORM would have read. JSON has
no date-times: PostgreSQL writes them in ISO 8601, and ``when`` (which ``instance_of`` uses)
reads them back as the aware datetimes in UTC the ORM gives.
"""

from __future__ import annotations

import datetime
from collections.abc import Sequence
from typing import Any, TypeVar

from django.contrib.postgres.aggregates.mixins import OrderableAggMixin
from django.db import DEFAULT_DB_ALIAS, models
from django.db.models import Aggregate, QuerySet, Subquery, Value
from django.db.models.expressions import RawSQL
from django.db.models.functions import Cast, JSONArray

M = TypeVar("M", bound=models.Model)

# Values JSON holds as they are (a JSON field's own value, text, numbers, booleans).
_AS_IS = (
    models.JSONField,
    models.CharField,
    models.TextField,
    models.IntegerField,  # and every integer field, the automatic ids included
    models.BooleanField,
    models.ForeignKey,  # its id (a one-to-one field's too)
)


class _JsonArray(JSONArray):
    """``JSON_BUILD_ARRAY``: Django's ``JSONArray`` builds ``jsonb``, which PostgreSQL then
    aggregates and writes out again as text; ``json`` is text all the way (on a run's 15
    steps with their design outputs, 0.22 to 0.34 ms against 0.67 to 0.90 for jsonb)."""

    def as_postgresql(self, compiler: Any, connection: Any, **extra_context: Any) -> Any:
        typed = self.copy()
        typed.set_source_expressions(  # typed as Django's JSONArray does (server-side binding)
            [
                expression
                if isinstance(expression, Cast)
                else Cast(expression, expression.output_field)
                for expression in typed.get_source_expressions()
            ]
        )
        return typed.as_sql(compiler, connection, function="JSON_BUILD_ARRAY", **extra_context)


class _JsonAgg(OrderableAggMixin, Aggregate):  # type: ignore[misc]
    """``JSON_AGG`` as text: Django's JSON field decodes it once (psycopg would decode a
    ``json`` value itself, which the field's converter does not expect)."""

    function = "JSON_AGG"
    template = "%(function)s(%(expressions)s %(order_by)s)::text"
    output_field = models.JSONField()


def json_rows(queryset: QuerySet[Any], *fields: Any, order_by: Sequence[Any]) -> Subquery:
    """The rows of ``queryset`` as one JSON column: ``[[field, ...], ...]`` in ``order_by``'s
    order; NULL where there are none. ``fields`` are names or expressions (JSON fields and
    their keys stay JSON); a date-time comes back as text (``when``)."""
    aggregate = _JsonAgg(_JsonArray(*fields), order_by=tuple(order_by))
    # Grouped by a constant, which Django leaves out of GROUP BY: one aggregate of all rows.
    whole = queryset.order_by().annotate(_all=Value(1)).values("_all")
    return Subquery(whole.annotate(_rows=aggregate).values("_rows"))


def rows_of(value: list[list[Any]] | None) -> list[list[Any]]:
    """What a ``json_rows`` column holds, as a list ([] for NULL: no row)."""
    return value or []


def when(value: str | None) -> datetime.datetime | None:
    """A date-time PostgreSQL wrote into JSON, as the aware datetime in UTC the ORM reads."""
    if value is None:
        return None
    return datetime.datetime.fromisoformat(value).astimezone(datetime.UTC)


def json_row(sql: str, params: Sequence[Any]) -> RawSQL:
    """One row of a table as a JSON object keyed by column (NULL where there is none):
    ``sql`` selects it, as ``SELECT to_jsonb(alias) FROM table alias WHERE ...``."""
    return RawSQL(f"({sql})", tuple(params), output_field=models.JSONField())  # noqa: S611


def instance_of(
    model: type[M], row: dict[str, Any] | None, *, using: str = DEFAULT_DB_ALIAS
) -> M | None:
    """The instance of ``model`` the ORM reads for a ``json_row`` value (None for NULL).
    TypeError for a field whose value JSON does not hold exactly (a decimal, say)."""
    if row is None:
        return None
    names, values = [], []
    for field in model._meta.concrete_fields:
        value = row[str(field.column)]
        if isinstance(field, models.DateTimeField):
            value = when(value)
        elif not isinstance(field, _AS_IS):
            raise TypeError(f"{model.__name__}.{field.name}: not read back from JSON")
        names.append(field.attname)
        values.append(value)
    return model.from_db(using, names, values)
