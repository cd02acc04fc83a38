"""Admin for runs and steps: filters, links, and the cancel / resume / retry-step actions."""

from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from pipeline.events import publish
from pipeline.models import Event, Run, Step
from tests.factories import ProjectFactory

pytestmark = pytest.mark.django_db

RUN_LIST = reverse("admin:pipeline_run_changelist")
STEP_LIST = reverse("admin:pipeline_step_changelist")


@pytest.fixture
def running(project: Any) -> Run:
    return Run.objects.create(project=project, prompt="running one", status=Run.Status.RUNNING)


@pytest.fixture
def failed(project: Any) -> Run:
    run = Run.objects.create(
        project=project, prompt="failed one", status=Run.Status.FAILED, error_code="provider"
    )
    publish(run_id=run.pk, type="run.failed", payload={"reason": "provider"})
    return run


@pytest.fixture
def completed(project: Any) -> Run:
    return Run.objects.create(project=project, prompt="done one", status=Run.Status.COMPLETED)


def run_ids(response: Any) -> set[int]:
    return {run.pk for run in response.context["cl"].result_list}


def test_runs_filter_by_status(admin_client: Client, running: Run, failed: Run) -> None:
    response = admin_client.get(RUN_LIST, {"status__exact": "failed"})

    assert run_ids(response) == {failed.pk}


def test_runs_filter_by_project(admin_client: Client, running: Run) -> None:
    elsewhere = Run.objects.create(project=ProjectFactory(), prompt="x")

    response = admin_client.get(RUN_LIST, {"project__id__exact": elsewhere.project_id})

    assert run_ids(response) == {elsewhere.pk}


def test_a_runs_page_lists_its_steps_and_links_to_them(admin_client: Client, running: Run) -> None:
    Step.objects.create(run=running, role="architect", key="architect:r1")

    response = admin_client.get(reverse("admin:pipeline_run_change", args=[running.pk]))

    body = response.content.decode()
    assert ("architect:r1" in body, f"{STEP_LIST}?run__id__exact={running.pk}" in body) == (
        True,
        True,
    )


def test_steps_filter_by_role_and_status(admin_client: Client, running: Run) -> None:
    wanted = Step.objects.create(run=running, role="coder", key="c1", status="failed")
    Step.objects.create(run=running, role="coder", key="c2", status="succeeded")
    Step.objects.create(run=running, role="tester", key="t1", status="failed")

    response = admin_client.get(STEP_LIST, {"role": "coder", "status__exact": "failed"})

    assert [s.pk for s in response.context["cl"].result_list] == [wanted.pk]


def test_steps_of_one_run_through_the_runs_link(
    admin_client: Client, running: Run, failed: Run
) -> None:
    mine = Step.objects.create(run=running, role="coder", key="c1")
    Step.objects.create(run=failed, role="coder", key="c1")

    response = admin_client.get(STEP_LIST, {"run__id__exact": running.pk})

    assert [s.pk for s in response.context["cl"].result_list] == [mine.pk]


def test_cancel_action_cancels_an_active_run_through_the_service(
    admin_client: Client, running: Run
) -> None:
    admin_client.post(RUN_LIST, {"action": "cancel_runs", "_selected_action": [running.pk]})

    running.refresh_from_db()
    last_event = Event.objects.filter(run=running).order_by("-seq").first()
    assert (running.status, last_event.type) == (Run.Status.CANCELLED, "run.cancelled")


def test_cancel_action_leaves_a_finished_run_alone_and_says_why(
    admin_client: Client, completed: Run
) -> None:
    response = admin_client.post(
        RUN_LIST, {"action": "cancel_runs", "_selected_action": [completed.pk]}, follow=True
    )

    completed.refresh_from_db()
    notes = [str(m) for m in response.context["messages"]]
    assert (completed.status, len(notes), notes[0].startswith("Not cancelled")) == (
        Run.Status.COMPLETED,
        1,
        True,
    )


def test_resume_action_requeues_a_failed_run(admin_client: Client, failed: Run) -> None:
    admin_client.post(RUN_LIST, {"action": "resume_runs", "_selected_action": [failed.pk]})

    failed.refresh_from_db()
    assert failed.status == Run.Status.QUEUED


def test_retry_step_action_resets_the_failed_step_and_requeues_its_run(
    admin_client: Client, failed: Run
) -> None:
    step = Step.objects.create(run=failed, role="coder", key="coder:a:1", status="failed")

    admin_client.post(STEP_LIST, {"action": "retry_steps", "_selected_action": [step.pk]})

    step.refresh_from_db()
    failed.refresh_from_db()
    assert (step.status, failed.status) == (Step.Status.PENDING, Run.Status.QUEUED)


def test_a_non_staff_user_is_sent_to_the_login_page(user: Any, running: Run) -> None:
    client = Client()
    client.force_login(user)

    response = client.get(RUN_LIST)

    assert (response.status_code, response["Location"].startswith("/admin/login/")) == (302, True)
