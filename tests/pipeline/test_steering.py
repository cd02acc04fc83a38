"""Pause, resume after a pause, and messages to a task: the endpoints and their rules."""

from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from pipeline.models import Event, PlanTask, Run, Step, TaskMessage
from pipeline.services.run_state import RunStopped
from pipeline.services.runs import run_reap_stale
from pipeline.services.steering import task_messages_take
from pipeline.services.steps import StepSpec, step_run

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def running(project: Any) -> Run:
    """A running run with a plan of two tasks, ``core`` green and ``cli`` pending."""
    run = Run.objects.create(
        project=project,
        created_by=project.owner,
        prompt="A CLI timer",
        status=Run.Status.RUNNING,
        heartbeat_at=timezone.now(),
        deadline_at=timezone.now() + timedelta(hours=1),
    )
    PlanTask.objects.create(run=run, key="core", title="Core", status=PlanTask.Status.SUCCEEDED)
    PlanTask.objects.create(run=run, key="cli", title="CLI", depends_on=["core"], layer=1)
    return run


# --- pause ----------------------------------------------------------------------------------


def test_pause_holds_an_active_run_and_names_the_steps_that_finish(
    api_client: Any, running: Run
) -> None:
    Step.objects.create(
        run=running, role="coder", key="task:cli:coder:1", status=Step.Status.RUNNING
    )

    response = api_client.post(f"/runs/{running.id}/pause")

    running.refresh_from_db()
    assert response.status_code == 202
    assert response.json()["status"] == "paused"
    assert running.status == Run.Status.PAUSED
    assert running.paused_at is not None
    event = Event.objects.filter(run=running).order_by("-seq").first()
    assert (event.type, event.payload) == ("run.paused", {"finishing": ["task:cli:coder:1"]})


@pytest.mark.parametrize(
    "status", [Run.Status.AWAITING_APPROVAL, Run.Status.COMPLETED, Run.Status.PAUSED]
)
def test_only_an_active_run_can_be_paused(api_client: Any, running: Run, status: str) -> None:
    Run.objects.filter(id=running.id).update(status=status)

    response = api_client.post(f"/runs/{running.id}/pause")

    assert response.status_code == 409
    assert response.json()["code"] == "not_pausable"
    assert Run.objects.get(id=running.id).status == status


def test_a_paused_run_starts_no_step(running: Run) -> None:
    Run.objects.filter(id=running.id).update(status=Run.Status.PAUSED)

    with pytest.raises(RunStopped):
        step_run(
            run_id=running.id,
            spec=StepSpec(role="coder", key="task:cli:coder:1"),
            prepare=lambda run, step: {},
            execute=lambda prepared, ledger: {"files": {}},
        )

    assert not Step.objects.filter(run=running).exists()


def test_the_reaper_leaves_a_paused_run_alone_even_with_a_dead_holder(running: Run) -> None:
    Run.objects.filter(id=running.id).update(
        status=Run.Status.PAUSED, heartbeat_at=timezone.now() - timedelta(hours=2)
    )
    Step.objects.create(
        run=running,
        role="coder",
        key="task:cli:coder:1",
        status=Step.Status.RUNNING,
        heartbeat_at=timezone.now() - timedelta(hours=2),
    )

    resumed = run_reap_stale()

    assert resumed == []
    assert Run.objects.get(id=running.id).status == Run.Status.PAUSED


def test_resume_after_a_pause_moves_the_deadline_on_by_the_time_paused(
    api_client: Any, running: Run
) -> None:
    deadline = running.deadline_at
    api_client.post(f"/runs/{running.id}/pause")
    Run.objects.filter(id=running.id).update(paused_at=timezone.now() - timedelta(minutes=20))

    response = api_client.post(f"/runs/{running.id}/resume")

    running.refresh_from_db()
    assert response.status_code == 202
    assert (running.status, running.paused_at) == (Run.Status.QUEUED, None)
    assert running.paused_seconds >= 20 * 60
    assert running.deadline_at - deadline == timedelta(seconds=running.paused_seconds)
    event = Event.objects.filter(run=running).order_by("-seq").first()
    assert (event.type, event.payload) == ("run.resumed", {"reason": "unpaused"})


def test_a_paused_run_can_be_cancelled(api_client: Any, running: Run) -> None:
    api_client.post(f"/runs/{running.id}/pause")

    response = api_client.post(f"/runs/{running.id}/cancel")

    assert response.status_code == 202
    assert Run.objects.get(id=running.id).status == Run.Status.CANCELLED


@pytest.mark.parametrize("action", ["pause", "tasks/cli/messages"])
def test_another_users_run_is_404_to_pause_and_messages(
    other_client: Any, running: Run, action: str
) -> None:
    response = other_client.post(f"/runs/{running.id}/{action}", {"text": "hi"}, format="json")

    assert response.status_code == 404
    assert Run.objects.get(id=running.id).status == Run.Status.RUNNING
    assert not TaskMessage.objects.exists()


# --- messages -------------------------------------------------------------------------------


def send(client: Any, run: Run, key: str, text: str) -> Any:
    return client.post(f"/runs/{run.id}/tasks/{key}/messages", {"text": text}, format="json")


def test_a_message_to_a_task_waits_for_its_next_coder_attempt(
    api_client: Any, running: Run, user: Any
) -> None:
    response = send(api_client, running, "cli", "Use argparse, not click.")

    message = TaskMessage.objects.get()
    assert response.status_code == 201
    assert response.json()["text"] == "Use argparse, not click."
    assert (message.plan_task.key, message.author, message.step) == ("cli", user, None)
    event = Event.objects.filter(run=running).order_by("-seq").first()
    assert (event.type, event.payload["task"]) == ("task.message", "cli")
    detail = api_client.get(f"/runs/{running.id}").json()
    assert [(m["task"], m["text"], m["attempt"]) for m in detail["messages"]] == [
        ("cli", "Use argparse, not click.", None)
    ]


@pytest.mark.parametrize(
    ("key", "text", "status", "code"),
    [
        ("nope", "Hello", 404, "task_not_found"),
        ("core", "Hello", 409, "task_finished"),
        ("cli", "   ", 400, "invalid_message"),
        ("cli", "x" * 4001, 400, "invalid_message"),
    ],
)
def test_a_message_nobody_could_read_is_refused(
    api_client: Any, running: Run, key: str, text: str, status: int, code: str
) -> None:
    response = send(api_client, running, key, text)

    assert (response.status_code, response.json()["code"]) == (status, code)
    assert not TaskMessage.objects.exists()


def test_a_message_to_a_finished_run_is_refused(api_client: Any, running: Run) -> None:
    Run.objects.filter(id=running.id).update(status=Run.Status.COMPLETED)

    response = send(api_client, running, "cli", "Too late")

    assert (response.status_code, response.json()["code"]) == (409, "run_finished")


def test_a_task_takes_at_most_its_bound_of_messages(
    api_client: Any, running: Run, settings: Any
) -> None:
    settings.PIPELINE_TASK_MESSAGES_MAX = 2
    codes = [send(api_client, running, "cli", f"note {n}").status_code for n in range(3)]

    assert codes == [201, 201, 400]
    assert TaskMessage.objects.count() == 2


def test_a_secret_pasted_into_a_message_never_reaches_a_prompt(
    api_client: Any, running: Run
) -> None:
    send(api_client, running, "cli", "Call it with sk-ant-api03-" + "a" * 40 + " please")

    assert "sk-ant" not in TaskMessage.objects.get().text


def test_a_coder_step_takes_the_waiting_messages_once_and_keeps_them_on_retry(
    running: Run, user: Any
) -> None:
    cli = PlanTask.objects.get(run=running, key="cli")
    first = Step.objects.create(run=running, role="coder", key="task:cli:coder:1", plan_task=cli)
    TaskMessage.objects.create(run=running, plan_task=cli, author=user, text="one")

    taken = task_messages_take(step=first, plan_task_id=cli.id)
    TaskMessage.objects.create(run=running, plan_task=cli, author=user, text="two")
    again = task_messages_take(step=first, plan_task_id=cli.id)
    second = Step.objects.create(run=running, role="coder", key="task:cli:coder:2", plan_task=cli)
    later = task_messages_take(step=second, plan_task_id=cli.id)

    assert (taken, again, later) == (["one"], ["one", "two"], [])
    assert Step.objects.get(id=first.id).input == {"messages": ["one", "two"]}
