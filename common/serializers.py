"""Output serializers that cost little per object, for lists served on every page load.

DRF's ``Serializer.to_representation`` walks its fields for every object: a generator of
readable fields, ``get_attribute`` through ``source_attrs``, then each field's own
``to_representation`` (a ``DateTimeField`` looks the current time zone up through an
``asgiref`` local on every value). Profiled on ``GET /projects`` (20 projects) that walk was
the largest single cost of the request, after building the fields themselves, which a
``ModelSerializer`` does from the model's metadata for every new serializer.

``FastOutputMixin`` builds a class's fields from the model once and copies them for each
new serializer (the way DRF copies declared fields), and plans the walk once per class,
model and current time zone: a field that reads a plain model column of a simple kind
(text, integer, boolean, an ISO 8601 date-time) is read and converted inline, exactly as DRF
would; any other field goes through DRF's own path, unchanged. A serializer using it must
not vary its fields by instance or context.
"""

from __future__ import annotations

import copy
import datetime
import functools
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from django.conf import settings
from django.core.signals import setting_changed
from django.db.models import Model
from django.dispatch import receiver
from django.utils import timezone
from rest_framework import ISO_8601, fields, serializers
from rest_framework.relations import PKOnlyObject, PrimaryKeyRelatedField
from rest_framework.settings import api_settings

# How a field's value becomes its representation (None: the field's own method).
_Convert = Callable[[Any], Any]


def _identity_if(kind: type, field: fields.Field) -> _Convert:
    own = field.to_representation

    def convert(value: Any) -> Any:
        return value if type(value) is kind else own(value)

    return convert


def _datetime(field: fields.DateTimeField) -> _Convert | None:
    output_format = getattr(field, "format", api_settings.DATETIME_FORMAT)
    if output_format is None or output_format.lower() != ISO_8601 or hasattr(field, "timezone"):
        return None
    own = field.to_representation
    zone = field.default_timezone()  # the current time zone, looked up once

    def convert(value: Any) -> Any:
        if zone is None or not isinstance(value, datetime.datetime) or timezone.is_naive(value):
            return own(value)
        text = value.astimezone(zone).isoformat()
        return text[:-6] + "Z" if text.endswith("+00:00") else text

    return convert


def _converter(field: fields.Field) -> _Convert:
    # Exact classes only: a subclass may represent its values differently.
    if type(field) in (fields.CharField, fields.EmailField, fields.SlugField):
        return _identity_if(str, field)
    if type(field) is fields.IntegerField:
        return _identity_if(int, field)
    if type(field) is fields.BigIntegerField and not getattr(
        field, "coerce_to_string", api_settings.COERCE_BIGINT_TO_STRING
    ):
        # A model's ``BigAutoField`` id: DRF's own method is ``int(value)`` unless it is
        # asked for a string.
        return _identity_if(int, field)
    if type(field) is fields.BooleanField:
        return _identity_if(bool, field)
    if type(field) is fields.DateTimeField:
        fast = _datetime(field)
        if fast is not None:
            return fast
    return field.to_representation


# Fields that hold no other field and keep no state of their own past ``bind``: a shallow
# copy of an unbound one is a field DRF's deep copy would give (which builds every field
# again from its arguments: most of the cost of a serializer with many fields).
_LEAF_FIELDS = frozenset(
    {
        fields.BigIntegerField,
        fields.BooleanField,
        fields.CharField,
        fields.ChoiceField,
        fields.DateTimeField,
        fields.DecimalField,
        fields.EmailField,
        fields.FloatField,
        fields.IntegerField,
        fields.JSONField,
        fields.ReadOnlyField,
        fields.SerializerMethodField,
        fields.SlugField,
        PrimaryKeyRelatedField,
    }
)


@functools.cache
def _plain_columns(model: type[Model]) -> frozenset[str]:
    """The names of ``model``'s own columns that are not relations."""
    return frozenset(f.name for f in model._meta.concrete_fields if not f.is_relation)


def _copy(field: fields.Field) -> fields.Field:
    """A fresh unbound copy of the template ``field``."""
    if type(field) in _LEAF_FIELDS and getattr(field, "parent", None) is None:
        # What ``copy.copy`` gives (its ``__reduce_ex__`` path ends in the same new object
        # with the template's ``__dict__``), in a fifth of the time.
        clone = object.__new__(type(field))
        clone.__dict__.update(field.__dict__)
        return clone
    return copy.deepcopy(field)


# Field classes whose representation reads nothing of the serializer they are bound to:
# their converters are built once, from the class's unbound template fields.
_UNBOUND_SAFE = frozenset(
    {
        fields.BigIntegerField,
        fields.BooleanField,
        fields.CharField,
        fields.DateTimeField,
        fields.EmailField,
        fields.IntegerField,
        fields.SlugField,
    }
)
# (serializer class, model, current time zone) -> what each readable field is read with:
# ``(name, column, converter)``, column None for DRF's own path.
_SHAPES: dict[tuple[type, type | None, Any], list[tuple[str, str | None, _Convert | None]]] = {}


def _shape_of(
    cls: type, model: type[Model] | None, readable: Iterable[fields.Field]
) -> list[tuple[str, str | None, _Convert | None]]:
    """How a serializer of ``cls`` reads an instance of ``model`` (worked out once per time
    zone, since date-times are represented in the current one)."""
    key = (cls, model, timezone.get_current_timezone() if settings.USE_TZ else None)
    shape = _SHAPES.get(key)
    if shape is None:
        # Only a model's own columns are read directly: getattr on them cannot fail, call
        # anything, or differ from what DRF's get_attribute returns.
        columns = _plain_columns(model) if model is not None else frozenset()
        templates = cls.__dict__.get("_fast_field_templates", {})
        shape = []
        for field in readable:
            attrs = field.source_attrs
            direct = (
                len(attrs) == 1
                and attrs[0] in columns
                and type(field).get_attribute is fields.Field.get_attribute
            )
            convert = None
            if direct and type(field) in _UNBOUND_SAFE and field.field_name in templates:
                convert = _converter(templates[field.field_name])
            shape.append((str(field.field_name), attrs[0] if direct else None, convert))
        _SHAPES[key] = shape
    return shape


@receiver(setting_changed)
def _forget_shapes(*, setting: str, **_: Any) -> None:
    """DRF's settings (formats, big integers as strings) change what a field gives."""
    if setting in {"REST_FRAMEWORK", "USE_TZ", "TIME_ZONE"}:
        _SHAPES.clear()


class FastOutputMixin(serializers.Serializer):
    """Put first in a serializer's bases; its output is DRF's, computed with less work."""

    def get_fields(self) -> dict[str, fields.Field]:
        # Built once per class from the model (unbound templates), copied per serializer.
        templates = type(self).__dict__.get("_fast_field_templates")
        if templates is None:
            templates = super().get_fields()
            type(self)._fast_field_templates = templates  # type: ignore[attr-defined]
        return {name: _copy(field) for name, field in templates.items()}

    def _output_plan(self, instance: Any) -> list[tuple[str, str | None, Any, _Convert | None]]:
        plan = getattr(self, "_fast_output_plan", None)
        if plan is None:
            model = type(instance) if isinstance(instance, Model) else None
            shape = _shape_of(type(self), model, self._readable_fields)
            found = self.fields
            plan = [(name, attr, found[name], convert) for name, attr, convert in shape]
            self._fast_output_plan = plan
        return plan

    def to_representation(self, instance: Any) -> dict[str, Any]:
        ret: dict[str, Any] = {}
        for name, attr, field, convert in self._output_plan(instance):
            if attr is None:  # DRF's own path for this field
                try:
                    value = field.get_attribute(instance)
                except fields.SkipField:
                    continue
                check = value.pk if isinstance(value, PKOnlyObject) else value
                ret[name] = None if check is None else field.to_representation(value)
            else:
                value = getattr(instance, attr)
                if value is None:
                    ret[name] = None
                else:
                    ret[name] = (convert or field.to_representation)(value)
        return ret

    def represent_rows(
        self, rows: Iterable[Sequence[Any]], names: Sequence[str]
    ) -> list[dict[str, Any]]:
        """Each row (the values of the model columns ``names``, in that order) as
        ``to_representation`` gives an instance holding those values.

        ``names`` must be the sources of the serializer's fields, in their order, each a
        plain column read directly (as ``to_representation`` would): anything else is a
        ``ValueError`` rather than a different answer.
        """
        converters: list[tuple[str, _Convert]] = []
        sources = []
        for field in self._readable_fields:
            attrs = field.source_attrs
            if len(attrs) != 1 or type(field).get_attribute is not fields.Field.get_attribute:
                raise ValueError(f"{field.field_name} is not a plain column")
            converters.append((str(field.field_name), _converter(field)))
            sources.append(attrs[0])
        if sources != list(names):
            raise ValueError(f"rows of {list(names)} do not match the fields' {sources}")
        return [
            {
                name: None if value is None else convert(value)
                for (name, convert), value in zip(converters, row, strict=True)
            }
            for row in rows
        ]
