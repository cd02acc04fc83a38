"""A precompiled query gives what its QuerySet gives, in one query, for any values."""

import pytest

from common.db import PrecompiledQuery
from pipeline.models import Run

pytestmark = pytest.mark.django_db

runs_with_project = PrecompiledQuery(
    lambda run_id: Run.objects.select_related("project").filter(pk=run_id)
)


def _fields(obj):
    return {k: v for k, v in obj.__dict__.items() if k != "_state"}


def test_it_builds_the_same_instances_as_the_queryset(project, django_assert_num_queries):
    run = Run.objects.create(project=project, prompt="p", options={"budget_usd": "2.5"})
    expected = Run.objects.select_related("project").get(pk=run.pk)

    with django_assert_num_queries(1):
        found = runs_with_project.first(run.pk)
        related = found.project  # loaded with it, no second query

    assert _fields(found) == _fields(expected)
    assert found.options == {"budget_usd": "2.5"}  # the JSON field's converter ran
    assert _fields(related) == _fields(expected.project)
    assert (found._state.adding, found._state.db) == (False, "default")


def test_the_sql_compiled_for_one_value_serves_the_others(project):
    first = Run.objects.create(project=project, prompt="first")
    second = Run.objects.create(project=project, prompt="second")

    assert runs_with_project.first(first.pk).prompt == "first"
    assert runs_with_project.first(second.pk).prompt == "second"
    assert runs_with_project.first(second.pk + 1000) is None
