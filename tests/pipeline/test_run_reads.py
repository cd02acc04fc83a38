"""GET /runs/{id} reads all it shows in one statement besides the session's, and shows what
the selectors read one statement each; the import a run's tree descends from is found down
its chain of base runs in one."""

import json
from typing import Any

import pytest
from django.utils import timezone

from pipeline.models import (
    BaselineTest,
    PlanTask,
    Run,
    RunDelivery,
    RunImport,
    Step,
    TaskMessage,
)
from pipeline.selectors import run_import_origin
from projects.models import Artifact

pytestmark = pytest.mark.django_db

# The session and its user; the run with its delivery, its design steps and testers'
# regressions, plan tasks, messages, both trees and the import origin's record.
RUN_DETAIL_STATEMENTS = 2
# A fresh run with no message: the same two.
FRESH_RUN_DETAIL_STATEMENTS = 2


def _import_run(project: Any, *, base: Run | None = None, record: bool = True) -> Run:
    run = Run.objects.create(
        project=project, prompt="import", kind=Run.Kind.IMPORT, status="completed", base_run=base
    )
    if record:
        RunImport.objects.create(run=run, source="git", url="https://example.com/r.git")
    return run


def _follow_up(project: Any, base: Run | None) -> Run:
    return Run.objects.create(project=project, prompt="change", base_run=base)


def _artifacts(run: Run, paths: list[str]) -> None:
    for path in paths:
        Artifact.objects.create(
            project=run.project, run=run, path=path, sha256=path.ljust(64, "0"), size=1
        )


def _run_with_everything(project: Any, *, tasks: int) -> Run:
    """A follow-up of an import with rounds, ``tasks`` tasks (a coder, a tester with a
    regression and a message each), an integration suite, a delivery and both trees."""
    imported = _import_run(project)
    RunImport.objects.filter(run=imported).update(baseline_status="passed")
    BaselineTest.objects.create(run=imported, test_id="t.py::test_a", outcome="passed")
    run = _follow_up(project, imported)
    for role in ("architect", "planner"):
        Step.objects.create(run=run, role=role, key=f"design:1:{role}", round=1, output={})
    for number in range(tasks):
        task = PlanTask.objects.create(run=run, key=f"t{number}", title="T", layer=number)
        coder = Step.objects.create(
            run=run, role="coder", key=f"task:t{number}:coder:1", plan_task=task
        )
        Step.objects.create(
            run=run,
            role="tester",
            key=f"task:t{number}:tester:1",
            plan_task=task,
            status="succeeded",
            output={"regressions": ["t.py::test_a"]},
        )
        TaskMessage.objects.create(run=run, plan_task=task, text="hello", step=coder)
    Step.objects.create(
        run=run, role="tester", key="integrate:suite:1", status="succeeded", output={}
    )
    RunDelivery.objects.create(run=run, branch="b", requested_at=timezone.now())
    _artifacts(imported, ["a.py", "b.py"])
    _artifacts(run, ["a.py", "c.py"])
    return run


@pytest.mark.parametrize("tasks", [1, 5])
def test_a_run_detail_costs_two_statements_however_many_tasks_messages_and_steps(
    api_client: Any, project: Any, django_assert_max_num_queries: Any, tasks: int
) -> None:
    run = _run_with_everything(project, tasks=tasks)

    with django_assert_max_num_queries(RUN_DETAIL_STATEMENTS):
        body = api_client.get(f"/runs/{run.id}").json()

    # Every part was read: the count above covers each of them.
    assert len(body["rounds"]) == 1
    assert len(body["tasks"]) == len(body["messages"]) == tasks
    assert body["messages"][0]["attempt"] == 1
    assert body["base_changes"]["added"] == ["c.py"]
    assert body["import_source"]["run"] == run.base_run_id
    assert body["delivery"]["branch"] == "b"
    assert body["regressions"] == ["t.py::test_a"]


def test_a_run_without_a_delivery_shows_none_in_the_same_statements(
    api_client: Any, project: Any, django_assert_max_num_queries: Any
) -> None:
    run = _run_with_everything(project, tasks=1)
    RunDelivery.objects.filter(run=run).delete()

    with django_assert_max_num_queries(RUN_DETAIL_STATEMENTS):
        body = api_client.get(f"/runs/{run.id}").json()

    assert body["delivery"] is None


def test_a_fresh_run_shows_no_message_nor_import_in_the_same_two_statements(
    api_client: Any, project: Any, django_assert_num_queries: Any
) -> None:
    run = Run.objects.create(project=project, prompt="fresh")
    Step.objects.create(run=run, role="architect", key="design:1:architect", round=1, output={})
    task = PlanTask.objects.create(run=run, key="t0", title="T", layer=0)
    Step.objects.create(
        run=run,
        role="tester",
        key="task:t0:tester:1",
        plan_task=task,
        status="succeeded",
        output={"passed": True, "regressions": ["t.py::test_b"]},
    )

    with django_assert_num_queries(FRESH_RUN_DETAIL_STATEMENTS):
        body = api_client.get(f"/runs/{run.id}").json()

    assert body["messages"] == []
    assert body["import_source"] is None
    assert [entry["round"] for entry in body["rounds"]] == [1]
    assert [entry["key"] for entry in body["tasks"]] == ["t0"]
    assert body["regressions"] == body["regressions_caught"] == ["t.py::test_b"]


def test_the_detail_finds_the_import_down_a_chain_of_follow_ups_with_the_run(
    api_client: Any, project: Any
) -> None:
    imported = _import_run(project)
    middle = _follow_up(project, _follow_up(project, imported))
    last = _follow_up(project, middle)
    other = _import_run(project)  # another import of the project: not this chain's
    fresh = _follow_up(project, None)

    assert api_client.get(f"/runs/{last.id}").json()["import_source"]["run"] == imported.pk
    assert api_client.get(f"/runs/{imported.id}").json()["import_source"]["run"] == imported.pk
    assert api_client.get(f"/runs/{other.id}").json()["import_source"]["run"] == other.pk
    assert api_client.get(f"/runs/{fresh.id}").json()["import_source"] is None


def test_the_import_origin_is_found_down_a_chain_of_follow_ups(
    project: Any, django_assert_num_queries: Any
) -> None:
    imported = _import_run(project)
    last = _follow_up(project, _follow_up(project, _follow_up(project, imported)))

    with django_assert_num_queries(1):
        origin = run_import_origin(run=last)

    assert origin is not None
    assert origin.run_id == imported.pk
    assert run_import_origin(run=imported).run_id == imported.pk  # type: ignore[union-attr]


def test_the_nearest_import_of_the_chain_is_the_origin(project: Any) -> None:
    older = _import_run(project)
    newer = _import_run(project, base=_follow_up(project, older))

    assert run_import_origin(run=_follow_up(project, newer)).run_id == newer.pk  # type: ignore[union-attr]


def test_a_chain_that_starts_from_nothing_has_no_import_origin(project: Any) -> None:
    assert run_import_origin(run=_follow_up(project, _follow_up(project, None))) is None


def test_an_import_run_with_no_record_ends_the_walk_without_an_origin(project: Any) -> None:
    older = _import_run(project)
    unrecorded = _import_run(project, base=_follow_up(project, older), record=False)

    assert run_import_origin(run=_follow_up(project, unrecorded)) is None


def _rendered_detail(run: Run, user: Any, *, for_detail: bool) -> bytes:
    from rest_framework.renderers import JSONRenderer

    from pipeline.api.serializers import RunDetailSerializer
    from pipeline.selectors import run_get_for_user

    read = run_get_for_user(user=user, run_id=run.pk, for_detail=for_detail)
    return JSONRenderer().render(RunDetailSerializer(read).data)


def test_the_one_statement_shows_what_the_selectors_read_one_by_one(
    project: Any, user: Any
) -> None:
    run = _run_with_everything(project, tasks=3)
    record = RunImport.objects.get(run=run.base_run)
    record.imported_at = timezone.now()  # microseconds: written as milliseconds, with Z
    record.symlinks = {"link": "a.py"}
    record.skipped = [{"path": "big.bin", "reason": "too large"}]
    record.binary = ["logo.png"]
    record.baseline_counts = {"passed": 1}
    record.save()
    Step.objects.filter(run=run, key="design:1:architect").update(
        output={"summary": "Plan", "resolutions": ["r"]}
    )
    Step.objects.filter(run=run, key="design:1:planner").update(
        output={"objections": ["o"], "approved": True}, status="succeeded"
    )
    task = PlanTask.objects.filter(run=run).first()
    # The first task in the last layer: the tasks in layer order, not in id order.
    PlanTask.objects.filter(pk=task.pk).update(depends_on=["t1"], files=["a.py"], layer=9)
    on_the_second = timezone.now().replace(microsecond=0)
    waiting = TaskMessage.objects.create(run=run, plan_task=task, text='later \u2028 "q"')
    TaskMessage.objects.filter(pk=waiting.pk).update(created_at=on_the_second)
    Artifact.objects.filter(run=run, path="a.py").update(sha256="f" * 64)  # changed

    body = _rendered_detail(run, user, for_detail=True)

    assert body == _rendered_detail(run, user, for_detail=False)
    shown = json.loads(body)
    assert shown["base_changes"]["changed"] == ["a.py"]
    assert shown["messages"][-1]["attempt"] is None
    assert shown["messages"][-1]["at"] == on_the_second.isoformat().replace("+00:00", "Z")
    assert shown["import_source"]["imported_at"].endswith("Z")
    assert shown["rounds"][0]["approved"] is True
    assert [entry["key"] for entry in shown["tasks"]] == ["t1", "t2", "t0"]


def test_the_one_statement_shows_a_fresh_run_as_the_selectors_do(project: Any, user: Any) -> None:
    run = Run.objects.create(project=project, prompt="fresh")

    assert _rendered_detail(run, user, for_detail=True) == _rendered_detail(
        run, user, for_detail=False
    )
