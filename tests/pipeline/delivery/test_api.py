"""``POST /runs/{id}/deliver``, ``deliver`` of generate and the run's ``delivery`` field:
owner only, plain refusals, a request made again answered with the same delivery."""

from typing import Any

import pytest
from django.db import transaction

from pipeline.models import Run, RunDelivery
from repositories.services import forge_connection_put
from tests.pipeline.delivery.helpers import make_completed_run


@pytest.fixture
def forge_connected(project: Any) -> Any:
    return forge_connection_put(
        project=project, kind="github", repository="acme/app", token="ghp_notsentanywhere"
    )


@pytest.fixture
def run(project: Any) -> Run:
    return make_completed_run(project, {"app.py": "print('v2')\n"})


def test_deliver_answers_202_with_the_queued_delivery(
    api_client: Any, run: Run, forge_connected: Any, django_capture_on_commit_callbacks: Any
) -> None:
    with django_capture_on_commit_callbacks() as callbacks:
        response = api_client.post(f"/runs/{run.pk}/deliver", {}, format="json")

    assert response.status_code == 202, response.json()
    body = response.json()
    assert {key: body[key] for key in ("branch", "commit", "pull_request_url", "state")} == {
        "branch": f"aiflow/run-{run.pk}",
        "commit": None,
        "pull_request_url": None,
        "state": "queued",
    }
    assert (body["pull_request"], body["trigger"]) == (True, "request")
    assert len(callbacks) == 1  # the delivery task, sent once the request commits
    detail = api_client.get(f"/runs/{run.pk}").json()
    assert detail["delivery"] == body


def test_asking_again_while_it_is_under_way_queues_nothing_more(
    api_client: Any, run: Run, forge_connected: Any, django_capture_on_commit_callbacks: Any
) -> None:
    api_client.post(f"/runs/{run.pk}/deliver", {"pull_request": False}, format="json")
    with django_capture_on_commit_callbacks() as callbacks:
        again = api_client.post(f"/runs/{run.pk}/deliver", {}, format="json")

    assert again.status_code == 202
    assert (again.json()["state"], again.json()["pull_request"]) == ("queued", True)
    assert callbacks == []
    assert RunDelivery.objects.get(run=run).attempt == 1


def test_a_run_keeps_the_branch_of_its_first_delivery(
    api_client: Any, run: Run, forge_connected: Any
) -> None:
    first = api_client.post(f"/runs/{run.pk}/deliver", {"branch": "feature/x"}, format="json")
    RunDelivery.objects.filter(run=run).update(state="delivered")

    other = api_client.post(f"/runs/{run.pk}/deliver", {"branch": "feature/y"}, format="json")

    assert first.json()["branch"] == "feature/x"
    assert other.status_code == 409
    assert other.json() == {
        "detail": f"Run {run.pk} is delivered to feature/x; it stays on that branch.",
        "code": "delivery_branch_fixed",
    }


def test_another_users_run_is_not_found(other_client: Any, run: Run, forge_connected: Any) -> None:
    response = other_client.post(f"/runs/{run.pk}/deliver", {}, format="json")

    assert response.status_code == 404
    assert not RunDelivery.objects.exists()


def test_an_unfinished_run_cannot_be_delivered(
    api_client: Any, run: Run, forge_connected: Any
) -> None:
    Run.objects.filter(pk=run.pk).update(status="running")

    response = api_client.post(f"/runs/{run.pk}/deliver", {}, format="json")

    assert (response.status_code, response.json()["code"]) == (409, "run_not_completed")


def test_a_project_without_a_forge_is_told_to_set_one(api_client: Any, run: Run) -> None:
    response = api_client.post(f"/runs/{run.pk}/deliver", {}, format="json")

    assert (response.status_code, response.json()["code"]) == (400, "no_forge")


def test_a_bad_branch_name_is_refused(api_client: Any, run: Run, forge_connected: Any) -> None:
    response = api_client.post(f"/runs/{run.pk}/deliver", {"branch": "../main"}, format="json")

    assert response.status_code == 400
    assert response.json() == {
        "detail": "'../main' is not a usable branch name.",
        "code": "bad_branch",
    }


def test_generate_with_deliver_waits_for_the_run_to_complete(
    api_client: Any, project: Any, forge_connected: Any
) -> None:
    response = api_client.post(
        f"/projects/{project.pk}/generate",
        {"prompt": "A tiny app", "deliver": {"branch": "feature/tiny"}},
        format="json",
    )

    assert response.status_code == 202, response.json()
    delivery = RunDelivery.objects.get(run_id=response.json()["run_id"])
    assert (delivery.branch, delivery.pull_request, delivery.state, delivery.trigger) == (
        "feature/tiny",
        True,
        "waiting",
        "generate",
    )


def test_generate_with_deliver_and_no_forge_starts_no_run(
    api_client: Any, project: Any, django_capture_on_commit_callbacks: Any
) -> None:
    with django_capture_on_commit_callbacks() as callbacks:
        response = api_client.post(
            f"/projects/{project.pk}/generate",
            {"prompt": "A tiny app", "deliver": {}},
            format="json",
        )

    assert (response.status_code, response.json()["code"]) == (400, "no_forge")
    assert not Run.objects.filter(project=project).exists()
    assert callbacks == []


def test_completing_the_run_queues_the_waiting_delivery_once(
    api_client: Any, project: Any, forge_connected: Any, django_capture_on_commit_callbacks: Any
) -> None:
    from pipeline.delivery.services import delivery_on_run_completed

    response = api_client.post(
        f"/projects/{project.pk}/generate", {"prompt": "A tiny app", "deliver": {}}, format="json"
    )
    run_id = response.json()["run_id"]
    with django_capture_on_commit_callbacks() as callbacks, transaction.atomic():
        first = delivery_on_run_completed(run_id=run_id)
        second = delivery_on_run_completed(run_id=run_id)

    assert (first, second) == (True, False)
    assert len(callbacks) == 1
    delivery = RunDelivery.objects.get(run_id=run_id)
    assert (delivery.state, delivery.attempt) == ("queued", 1)
