"""Row sets read as JSON columns of another query (common.row_sets): the rows in order, none
as an empty list, and a record built back as the ORM builds it."""

from typing import Any

import pytest
from django.db.models import OuterRef
from django.utils import timezone

from common.row_sets import instance_of, json_row, json_rows, rows_of
from pipeline.models import Run, RunImport
from projects.models import Project
from tests.factories import ProjectFactory

pytestmark = pytest.mark.django_db


def _runs_of_each(*projects: Any) -> dict[int, list[list[Any]]]:
    runs = Run.objects.filter(project_id=OuterRef("id"))
    read = Project.objects.filter(id__in=[p.pk for p in projects]).annotate(
        run_rows=json_rows(runs, "id", "status", "options", order_by=("-id",))
    )
    return {project.pk: rows_of(project.run_rows) for project in read}


def test_the_rows_come_in_order_with_json_kept_and_none_as_an_empty_list(
    project: Any, user: Any
) -> None:
    empty = ProjectFactory(owner=user)
    first = Run.objects.create(project=project, prompt="a", options={"k": [1, None]})
    second = Run.objects.create(project=project, prompt="b", status="completed")

    found = _runs_of_each(project, empty)

    assert found[project.pk] == [
        [second.pk, "completed", second.options],
        [first.pk, first.status, {"k": [1, None]}],
    ]
    assert found[empty.pk] == []


def test_a_record_read_as_json_is_the_instance_the_orm_reads(project: Any) -> None:
    run = Run.objects.create(project=project, prompt="import", kind=Run.Kind.IMPORT)
    RunImport.objects.create(
        run=run,
        source="git",
        url="https://example.com/r.git",
        archive_bytes=2**40,
        symlinks={"l": "a"},
        skipped=[{"path": "x", "reason": "y"}],
        imported_at=timezone.now(),
    )
    read = Run.objects.annotate(
        record=json_row(
            "SELECT to_jsonb(r) FROM pipeline_runimport r WHERE r.run_id = pipeline_run.id", ()
        )
    ).get(pk=run.pk)

    built = instance_of(RunImport, read.record)
    orm = RunImport.objects.get(run=run)

    assert built is not None
    for field in RunImport._meta.concrete_fields:
        assert getattr(built, field.attname) == getattr(orm, field.attname), field.name
    assert built.imported_at.utcoffset() == timezone.timedelta(0)
    assert instance_of(RunImport, None) is None


def test_a_field_json_does_not_hold_exactly_is_refused(project: Any) -> None:
    run = Run.objects.create(project=project, prompt="p")
    row = Run.objects.filter(pk=run.pk).values().get()
    as_json = {str(Run._meta.get_field(name).column): value for name, value in row.items()}

    with pytest.raises(TypeError, match="budget_usd|cost_usd"):
        instance_of(Run, as_json)
