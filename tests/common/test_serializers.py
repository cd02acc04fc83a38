"""A fast output serializer gives exactly what DRF gives, field kind by field kind."""

from datetime import UTC, datetime, timedelta
from datetime import timezone as dt_timezone

import pytest
from django.utils import timezone
from rest_framework import serializers

from common.serializers import FastOutputMixin
from projects.models import Project
from tests.factories import ProjectFactory

pytestmark = pytest.mark.django_db


class Plain(serializers.ModelSerializer):
    owner_email = serializers.CharField(source="owner.email")  # dotted: DRF's path
    shout = serializers.SerializerMethodField()  # a method field: DRF's path
    created_day = serializers.DateTimeField(source="created_at", format="%Y-%m-%d")
    active = serializers.BooleanField(source="owner.is_active")

    class Meta:
        model = Project
        fields = [
            "id",
            "name",
            "description",
            "created_at",
            "updated_at",
            "owner_email",
            "shout",
            "created_day",
            "active",
        ]

    def get_shout(self, obj):
        return obj.name.upper()


class Fast(FastOutputMixin, Plain):
    pass


@pytest.fixture
def projects():
    made = [ProjectFactory(description="") for _ in range(3)]
    made[1].updated_at = datetime(2026, 3, 29, 1, 30, tzinfo=dt_timezone(timedelta(hours=5)))
    made[2].created_at = datetime(2026, 1, 1, 0, 0, 0, 123456, tzinfo=UTC)
    return made


def test_the_output_is_drfs_for_every_field(projects):
    assert Fast(projects, many=True).data == Plain(projects, many=True).data


def test_date_times_follow_the_current_time_zone(projects):
    with timezone.override("Asia/Kolkata"):
        fast, plain = Fast(projects, many=True).data, Plain(projects, many=True).data

    assert fast == plain
    assert fast[2]["created_at"] == "2026-01-01T05:30:00.123456+05:30"


def test_none_stays_none(projects):
    projects[0].description = None

    assert Fast(projects[0]).data["description"] is None
    assert Fast(projects[0]).data == Plain(projects[0]).data


def test_fields_are_built_from_the_model_once_per_class(projects, monkeypatch):
    from rest_framework.serializers import ModelSerializer

    built = []
    original = ModelSerializer.build_field

    def counting(self, *args, **kwargs):
        built.append(args[0])
        return original(self, *args, **kwargs)

    monkeypatch.setattr(ModelSerializer, "build_field", counting)

    class Once(FastOutputMixin, serializers.ModelSerializer):
        class Meta:
            model = Project
            fields = ["id", "name", "created_at"]

    first = Once(projects, many=True).data
    second = Once(projects[:1], many=True).data

    assert built == ["id", "name", "created_at"]
    assert second[0] == first[0]


class PlainColumns(serializers.ModelSerializer):
    class Meta:
        model = Project
        fields = ["id", "name", "description", "created_at", "updated_at"]


class Columns(FastOutputMixin, PlainColumns):
    pass


COLUMNS = ("id", "name", "description", "created_at", "updated_at")


def test_rows_of_columns_are_represented_as_the_instances_are(projects):
    rows = [tuple(getattr(project, name) for name in COLUMNS) for project in projects]

    rows[0] = (rows[0][0], rows[0][1], None, *rows[0][3:])
    projects[0].description = None

    with timezone.override("Asia/Kolkata"):
        represented = Columns().represent_rows(rows, COLUMNS)
        plain = PlainColumns(projects, many=True).data

    assert represented == plain
    assert [list(row) for row in represented] == [list(row) for row in plain]  # key order


def test_rows_in_another_order_than_the_fields_are_refused(projects):
    with pytest.raises(ValueError, match="do not match"):
        Columns().represent_rows([], ("name", "id", "description", "created_at", "updated_at"))


def test_rows_are_refused_by_a_serializer_with_a_field_that_is_not_a_column(projects):
    with pytest.raises(ValueError, match="not a plain column"):
        Fast().represent_rows([], COLUMNS)


def test_a_copied_field_is_bound_to_its_own_serializer_only(projects):
    first, second = Fast(projects[0]), Fast(projects[1])

    assert first.fields["shout"].parent is first
    assert second.fields["shout"].parent is second
    assert (first.data["shout"], second.data["shout"]) == (
        projects[0].name.upper(),
        projects[1].name.upper(),
    )


def test_big_integer_ids_are_strings_when_drf_is_asked_for_strings(projects, settings):
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "COERCE_BIGINT_TO_STRING": True}

    fast, plain = Fast(projects, many=True).data, Plain(projects, many=True).data

    assert fast == plain
    assert fast[0]["id"] == str(projects[0].id)
