"""A precompiled query gives what its QuerySet gives, in one query, for any values."""

from decimal import Decimal

import pytest
from django.db.models import OuterRef, Subquery, Value
from django.db.models.functions import Concat

from common.db import PrecompiledQuery, PrecompiledRows
from pipeline.models import Run, Step

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


def design_steps_query(run_id):
    return (
        Step.objects.filter(run_id=run_id, key__startswith="design:")
        .order_by("id")
        .values_list("key", "round", "output", "output__summary", "created_at")
    )


def test_rows_are_the_tuples_of_the_values_list_with_constants_kept(
    project, django_assert_num_queries
):
    design_steps = PrecompiledRows(design_steps_query)
    runs = [Run.objects.create(project=project, prompt=str(n)) for n in range(2)]
    for run in runs:
        for key in ("design:1:architect", "task:a:coder:1", "design:1:planner"):
            Step.objects.create(run=run, key=key, role="r", round=1, output={"summary": key})

    for run in runs:
        with django_assert_num_queries(1):
            found = design_steps.all(run.pk)
        assert found == list(design_steps_query(run.pk))
        assert [row[0] for row in found] == ["design:1:architect", "design:1:planner"]
        assert found[0][2] == {"summary": "design:1:architect"}  # JSON decoded


def prompt_and_error_query(prompt):
    # The constant comes first among the parameters.
    return Run.objects.filter(error_code="x", prompt=prompt).values_list("id")


def test_a_value_equal_to_a_constant_is_compiled_once_and_answered_right(project):
    by_prompt = PrecompiledRows(prompt_and_error_query)
    x = Run.objects.create(project=project, prompt="x", error_code="x")
    y = Run.objects.create(project=project, prompt="y", error_code="x")
    Run.objects.create(project=project, prompt="x", error_code="")

    # "x" is both the value and the constant: compiled for a stand-in, "x" then bound.
    assert by_prompt.all("x") == [(x.pk,)]
    assert by_prompt._compiled is not None
    assert by_prompt.all("y") == [(y.pk,)]
    assert by_prompt.all("x") == [(x.pk,)]


def test_equal_values_are_compiled_once_and_each_bound_to_its_place(
    project, django_assert_num_queries
):
    # A run's id equal to its owner's: the values alone cannot tell which goes where.
    of_owner = PrecompiledQuery(
        lambda run_id, owner_id: Run.objects.filter(id=run_id, project__owner_id=owner_id)
    )
    owner_id = project.owner_id
    same = Run.objects.create(id=owner_id, project=project, prompt="same ids")
    other = Run.objects.create(project=project, prompt="other")

    with django_assert_num_queries(1):  # one statement, the SQL compiled once
        assert of_owner.first(owner_id, owner_id).prompt == "same ids"
    assert of_owner._compiled is not None
    assert of_owner.first(other.pk, owner_id).prompt == "other"
    assert of_owner.first(same.pk, owner_id + 1) is None


def budget_and_cost_query(budget):
    return Run.objects.filter(cost_usd=Decimal("1.5"), budget_usd=budget).values_list("id")


def test_a_value_of_another_type_equal_to_a_constant_runs_the_queryset_until_it_can_be_placed(
    project,
):
    by_budget = PrecompiledRows(budget_and_cost_query)
    a = Run.objects.create(project=project, prompt="a", cost_usd="1.5", budget_usd="1.5")
    b = Run.objects.create(project=project, prompt="b", cost_usd="1.5", budget_usd="2")

    # A Decimal has no stand-in: 1.5 is both the value and the constant, the QuerySet runs.
    assert by_budget.all(Decimal("1.5")) == [(a.pk,)]
    assert by_budget._compiled is None
    # 2 places the value: compiled; 1.5 is then bound where the value goes.
    assert by_budget.all(Decimal("2")) == [(b.pk,)]
    assert by_budget._compiled is not None
    assert by_budget.all(Decimal("1.5")) == [(a.pk,)]


runs_with_delivery = PrecompiledQuery(
    lambda run_id: Run.objects.select_related("delivery").filter(pk=run_id)
)


def test_a_reverse_one_to_one_is_read_with_the_row_present_or_not(
    project, django_assert_num_queries
):
    from django.utils import timezone

    from pipeline.models import RunDelivery

    bare = Run.objects.create(project=project, prompt="bare")
    delivered = Run.objects.create(project=project, prompt="delivered")
    RunDelivery.objects.create(run=delivered, branch="b", requested_at=timezone.now())

    with django_assert_num_queries(2):
        found_bare = runs_with_delivery.first(bare.pk)
        found_delivered = runs_with_delivery.first(delivered.pk)
        assert found_bare is not None
        assert found_delivered is not None
        assert Run.delivery.related.is_cached(found_bare)
        assert Run.delivery.related.get_cached_value(found_bare) is None
        assert found_delivered.delivery.branch == "b"


def run_with_step_output_query(run_id, key):
    stored = Step.objects.filter(run_id=OuterRef("id"), key=key).values("output")[:1]
    return Run.objects.annotate(
        stored=Subquery(stored), label=Concat(Value("run:"), "error_code")
    ).filter(pk=run_id)


def test_annotations_are_set_on_the_instances_converted_as_the_queryset_does(
    project, django_assert_num_queries
):
    with_output = PrecompiledQuery(run_with_step_output_query)
    run = Run.objects.create(project=project, prompt="p")
    Step.objects.create(run=run, key="orchestrate", role="r", output={"notes": [1]})
    bare = Run.objects.create(project=project, prompt="q", error_code="x")

    for run_id, key in ((run.pk, "orchestrate"), (run.pk, "design"), (bare.pk, "orchestrate")):
        expected = run_with_step_output_query(run_id, key).get()
        with django_assert_num_queries(1):
            found = with_output.first(run_id, key)
        assert _fields(found) == _fields(expected)
    assert with_output._compiled is not None
    assert with_output.first(run.pk, "orchestrate").stored == {"notes": [1]}  # JSON decoded
    assert with_output.first(bare.pk, "orchestrate").label == "run:x"


def _prepared_statements() -> list[str]:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT statement FROM pg_prepared_statements")
        return [row[0] for row in cursor.fetchall()]


def marked_query(marker):
    def build(run_id):
        marked = Run.objects.filter(pk=run_id).annotate(**{marker: Value(1)})
        return marked.values_list("prompt", marker)

    return build


def test_a_precompiled_statement_is_prepared_on_its_connection_and_answers_the_same(project):
    query = PrecompiledRows(marked_query("prepared_marker_one"))
    run = Run.objects.create(project=project, prompt="prepared")

    assert query.all(run.pk) == [("prepared", 1)]
    assert query.all(run.pk) == list(marked_query("prepared_marker_one")(run.pk))
    assert query.all(run.pk + 1000) == []
    assert any("prepared_marker_one" in sql for sql in _prepared_statements())


def test_nothing_is_prepared_when_prepared_statements_are_off(project, settings):
    settings.DB_PREPARE_STATEMENTS = False  # behind a pooler that cannot keep them
    query = PrecompiledRows(marked_query("prepared_marker_two"))
    run = Run.objects.create(project=project, prompt="plain")

    assert query.all(run.pk) == [("plain", 1)]
    assert not any("prepared_marker_two" in sql for sql in _prepared_statements())


def test_a_query_that_compiles_otherwise_for_the_stand_ins_is_compiled_for_the_values(project):
    # As an exact lookup beyond a column's range compiles to no SQL at all (EmptyResultSet).
    def build(run_id):
        found = Run.objects.filter(pk=run_id)
        return found.values_list("prompt") if run_id < 1_000_000 else found.none()

    query = PrecompiledRows(build)
    run = Run.objects.create(project=project, prompt="in range")

    assert query.all(run.pk) == [("in range",)]
    assert query._compiled is not None
    assert query.all(run.pk + 1000) == []


def test_compact_sql_keeps_literals_and_refuses_comments():
    from common.db import compact_sql

    sql = "SELECT  'a  b',\n    x\nFROM t\n  WHERE y = 'it''s  ok'  "
    assert compact_sql(sql) == "SELECT 'a  b',x FROM t WHERE y = 'it''s  ok'"
    sql = "SELECT count( * ) ,\n  f(%(a)s, ' ( , ) ') FROM (\n  SELECT 1\n) AS one"
    assert compact_sql(sql) == "SELECT count(*),f(%(a)s,' ( , ) ')FROM(SELECT 1)AS one"
    with pytest.raises(ValueError):
        compact_sql("SELECT 1 -- one\nFROM t")


def test_the_statements_of_a_step_and_a_paid_call_fit_psycopg_s_cache():
    # Longer ones are parsed again by psycopg on every execution (STORE_PAID was 4,475 bytes).
    from psycopg._queries import MAX_CACHED_STATEMENT_LENGTH

    from pipeline.services import ledger_sql, step_sql

    statements = {
        "CLAIM": step_sql.CLAIM,
        "STORE": step_sql.STORE,
        "STORE_PAID": step_sql.STORE_PAID,
        "RECORD_USAGE": ledger_sql.RECORD_USAGE,
        "RESERVE": ledger_sql.RESERVE,
    }
    too_long = {
        name: len(sql.encode())
        for name, sql in statements.items()
        if len(sql.encode()) > MAX_CACHED_STATEMENT_LENGTH
    }
    assert too_long == {}
