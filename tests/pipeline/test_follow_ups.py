"""Follow-up runs: which base run a new run builds on (API and CLI), and the origin fields."""

import io
from typing import Any

import pytest
from django.core.management import CommandError, call_command

from pipeline.models import Run, Step
from tests.factories import ProjectFactory

pytestmark = pytest.mark.django_db


def make_run(project: Any, status: str = Run.Status.COMPLETED, **fields: Any) -> Run:
    return Run.objects.create(
        project=project, created_by=project.owner, prompt="A CLI timer", status=status, **fields
    )


def generate(client: Any, project: Any, **body: Any) -> Any:
    return client.post(
        f"/projects/{project.id}/generate", {"prompt": "Add a report", **body}, format="json"
    )


def test_a_new_run_builds_on_the_projects_latest_completed_run_by_default(
    api_client: Any, project: Any
) -> None:
    make_run(project)
    latest = make_run(project)
    make_run(project, status=Run.Status.FAILED)

    response = generate(api_client, project)

    assert response.status_code == 202
    assert Run.objects.get(id=response.json()["run_id"]).base_run_id == latest.id


def test_the_first_run_of_a_project_starts_fresh(api_client: Any, project: Any) -> None:
    make_run(project, status=Run.Status.FAILED)

    response = generate(api_client, project)

    assert Run.objects.get(id=response.json()["run_id"]).base_run_id is None


def test_base_run_null_starts_fresh_even_after_a_completed_run(
    api_client: Any, project: Any
) -> None:
    make_run(project)

    response = generate(api_client, project, base_run=None)

    assert response.status_code == 202
    assert Run.objects.get(id=response.json()["run_id"]).base_run_id is None


def test_an_explicit_base_run_is_stored_on_the_run(api_client: Any, project: Any) -> None:
    older = make_run(project)
    make_run(project)

    response = generate(api_client, project, base_run=older.id)

    assert Run.objects.get(id=response.json()["run_id"]).base_run_id == older.id


def test_another_users_run_as_base_is_404_and_starts_nothing(api_client: Any, project: Any) -> None:
    theirs = make_run(ProjectFactory())

    response = generate(api_client, project, base_run=theirs.id)

    assert (response.status_code, response.json()["code"]) == (404, "not_found")
    assert Run.objects.count() == 1


def test_a_run_of_the_users_other_project_as_base_is_400(
    api_client: Any, project: Any, user: Any
) -> None:
    elsewhere = make_run(ProjectFactory(owner=user))

    response = generate(api_client, project, base_run=elsewhere.id)

    assert (response.status_code, response.json()["code"]) == (400, "base_run_other_project")
    assert Run.objects.count() == 1


def test_an_unfinished_base_run_is_400(api_client: Any, project: Any) -> None:
    running = make_run(project, status=Run.Status.RUNNING)

    response = generate(api_client, project, base_run=running.id)

    assert (response.status_code, response.json()["code"]) == (400, "base_run_not_completed")


def test_a_base_run_that_is_not_an_id_is_400(api_client: Any, project: Any) -> None:
    response = generate(api_client, project, base_run="latest")

    assert response.status_code == 400


def test_run_list_and_detail_show_base_run_and_fork_source(api_client: Any, project: Any) -> None:
    base = make_run(project)
    fork = make_run(project, base_run=base, forked_from=base, fork_point="coding")

    listed = api_client.get(f"/projects/{project.id}/runs").json()[0]
    detail = api_client.get(f"/runs/{fork.id}").json()

    expected = {"base_run": base.id, "forked_from": base.id, "fork_point": "coding"}
    assert {key: listed[key] for key in expected} == expected
    assert {key: detail[key] for key in expected} == expected


def test_a_fresh_run_shows_no_origin(api_client: Any, project: Any) -> None:
    run = make_run(project)

    detail = api_client.get(f"/runs/{run.id}").json()

    assert (detail["base_run"], detail["forked_from"], detail["fork_point"]) == (None, None, "")


def test_steps_say_whether_they_were_reused_and_from_which_step(
    api_client: Any, project: Any
) -> None:
    source = make_run(project)
    origin = Step.objects.create(run=source, role="architect", key="design:1:architect")
    fork = make_run(project, forked_from=source)
    Step.objects.create(
        run=fork, role="architect", key="design:1:architect", reused=True, reused_from=origin
    )
    Step.objects.create(run=fork, role="coder", key="task:a:coder:1")

    body = api_client.get(f"/runs/{fork.id}/steps").json()

    assert [(s["key"], s["reused"], s["reused_from"]) for s in body] == [
        ("design:1:architect", True, origin.id),
        ("task:a:coder:1", False, None),
    ]


def test_a_reused_step_stays_reused_when_its_origin_run_is_deleted(project: Any) -> None:
    source = make_run(project)
    origin = Step.objects.create(run=source, role="architect", key="design:1:architect")
    copy = Step.objects.create(
        run=make_run(project),
        role="architect",
        key="design:1:architect",
        reused=True,
        reused_from=origin,
    )

    source.delete()

    copy.refresh_from_db()
    assert (copy.reused, copy.reused_from_id) == (True, None)


# --- manage.py generate --base / --fresh ------------------------------------------------------


def start(*args: str) -> Run:
    """Start a run through the command; it gives up following at once (no worker here)."""
    with pytest.raises(CommandError) as stopped:
        call_command(
            "generate", *args, "--timeout", "0.01", stdout=io.StringIO(), stderr=io.StringIO()
        )
    assert stopped.value.returncode == 3  # started, then --timeout passed
    return Run.objects.order_by("-id").first()


def test_the_command_builds_on_the_latest_completed_run_by_default(project: Any) -> None:
    latest = make_run(project)

    run = start(str(project.id), "Add a report")

    assert run.base_run_id == latest.id


def test_the_command_builds_on_the_run_named_by_base(project: Any) -> None:
    older = make_run(project)
    make_run(project)

    run = start(str(project.id), "Add a report", "--base", str(older.id))

    assert run.base_run_id == older.id


def test_the_command_starts_fresh_with_fresh(project: Any) -> None:
    make_run(project)

    run = start(str(project.id), "Add a report", "--fresh")

    assert run.base_run_id is None


def test_the_command_refuses_a_base_run_of_another_project(project: Any, user: Any) -> None:
    elsewhere = make_run(ProjectFactory(owner=user))

    with pytest.raises(CommandError, match="belongs to another project"):
        call_command(
            "generate",
            str(project.id),
            "Add a report",
            "--base",
            str(elsewhere.id),
            stdout=io.StringIO(),
        )


def test_base_and_fresh_cannot_be_given_together(project: Any) -> None:
    with pytest.raises(CommandError, match="not allowed with argument"):
        call_command(
            "generate", str(project.id), "p", "--base", "1", "--fresh", stdout=io.StringIO()
        )
