"""Lists that PostgreSQL writes as JSON, the very bytes DRF's ``JSONRenderer`` would send.

``GET /projects`` is read on every page load and every poll. Measured with
``bench/request_parts.py``, its own work (one query, then 20 rows turned into dictionaries,
their date-times parsed from PostgreSQL's text and written back to ISO 8601, then the list
rendered to JSON) was a third of its CPU, more than the authentication and the rate limit
together. PostgreSQL already holds every value as text it can write: ``JsonList`` has it
write the whole body in the same single statement, and the request sends that string.

The SQL writes what DRF writes, with its settings of this project (compact separators,
UTF-8 rather than ``\\u`` escapes, ISO 8601 date-times in UTC with ``Z`` and the microseconds
only when there are some): ``to_json`` escapes a string exactly as Python's ``json`` does
(``\\"``, ``\\\\``, ``\\n``-style short forms, ``\\u00XX`` for the other control characters),
and U+2028 and U+2029 are escaped afterwards, as DRF does. ``tests/projects/test_json_lists.py``
holds the bytes against DRF's for names and descriptions with every such character.
``render`` gives None (the caller then serializes as usual) when the time zone in force
or DRF's JSON settings differ from those the SQL was written for.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connections, models
from django.utils import timezone
from rest_framework import ISO_8601
from rest_framework.settings import api_settings

from .db import prepared_cursor

_TEXT = (models.CharField, models.TextField)
_INTEGER = (models.IntegerField, models.AutoField)  # BigAutoField and friends included


def _value_sql(field: models.Field, column: str) -> str:
    """SQL writing ``column`` as the JSON value DRF gives for ``field``, null when NULL."""
    if isinstance(field, models.DateTimeField):
        # isoformat() leaves out a fraction of zero: the only place ".000000" can stand.
        written = (
            f"""'"' || replace(to_char({column} AT TIME ZONE 'UTC',"""
            f""" 'YYYY-MM-DD"T"HH24:MI:SS.US'), '.000000', '') || 'Z"'"""
        )
    elif isinstance(field, models.BooleanField):
        written = f"CASE WHEN {column} THEN 'true' ELSE 'false' END"
    elif isinstance(field, _INTEGER):
        written = f"{column}::text"
    elif isinstance(field, _TEXT):
        written = f"to_json({column}::text)::text"
    else:
        raise TypeError(f"{field.name}: no JSON writing for {type(field).__name__}")
    return f"coalesce({written}, 'null')"


def _concrete(model: type[models.Model], name: str) -> tuple[models.Field, str]:
    """The field ``name`` of ``model`` and its column, for a field stored in the table."""
    field = model._meta.get_field(name)
    if not isinstance(field, models.Field) or not field.column:
        raise TypeError(f"{name}: not a column of {model.__name__}")
    return field, field.column


class JsonList:
    """The rows of ``model`` whose ``filter_field`` equals a value, in the model's ordering,
    as the JSON list of objects of ``fields`` (in that order) that DRF renders."""

    def __init__(
        self,
        model: type[models.Model],
        fields: Sequence[str],
        *,
        filter_field: str,
        using: str = DEFAULT_DB_ALIAS,
    ):
        self._using = using
        quote = connections[using].ops.quote_name
        meta = model._meta
        members = []
        for index, name in enumerate(fields):
            field, column = _concrete(model, name)  # a field's name: an identifier
            key = ("{" if index == 0 else ",") + f'"{name}":'
            members.append(f"'{key}' || {_value_sql(field, quote(column))}")
        ordering = []
        for item in meta.ordering or ():
            name = str(item).lstrip("-")
            direction = "DESC" if str(item).startswith("-") else "ASC"
            ordering.append(f"{quote(_concrete(model, name)[1])} {direction}")
        order = f" ORDER BY {', '.join(ordering)}" if ordering else ""
        # Built from the model's own names, quoted, never from a request's input.
        self.sql = (
            f"SELECT '[' || coalesce(string_agg({' || '.join(members)} || '}}', ','{order}),"  # noqa: S608
            f" '') || ']' FROM {quote(meta.db_table)}"
            f" WHERE {quote(_concrete(model, filter_field)[1])} = %s"
        )

    def render(self, value: Any) -> str | None:
        """The body for the rows whose filter field is ``value``; None where the SQL does not
        write what DRF would (another time zone in force, other JSON settings)."""
        if not _drf_writes_as_we_do():
            return None
        with prepared_cursor(self._using) as cursor:
            cursor.execute(self.sql, [value])
            (body,) = cursor.fetchone()
        # What DRF's JSONRenderer escapes beyond json.dumps (JavaScript's line terminators).
        return body.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")


def _drf_writes_as_we_do() -> bool:
    return (
        settings.USE_TZ
        and timezone.get_current_timezone_name() == "UTC"
        and api_settings.UNICODE_JSON
        and api_settings.COMPACT_JSON
        and str(api_settings.DATETIME_FORMAT).lower() == ISO_8601
        # Big integers (the ids) as numbers, not strings.
        and not getattr(api_settings, "COERCE_BIGINT_TO_STRING", False)
    )
