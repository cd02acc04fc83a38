"""The dashboard's steering: the Tasks card (edit the plan at the gate, message a task),
Pause and Resume, the decisions beside the design rounds, the live forecast."""

import json
from typing import Any

import pytest
from django.utils import timezone

from pipeline.models import PlanTask, Run, Step, TaskMessage
from tests.page_helpers import csrf_token_of, signed_in_client

pytestmark = pytest.mark.django_db


@pytest.fixture
def browser(user: Any) -> Any:
    return signed_in_client(user)


@pytest.fixture
def gated(project: Any) -> Run:
    run = Run.objects.create(
        project=project,
        created_by=project.owner,
        prompt="A CLI timer",
        status=Run.Status.AWAITING_APPROVAL,
        design={"summary": "A timer.", "interfaces": []},
        heartbeat_at=timezone.now(),
    )
    PlanTask.objects.create(run=run, key="core", title="Core", files=["timer/core.py"])
    PlanTask.objects.create(
        run=run, key="cli", title="CLI", files=["timer/cli.py"], depends_on=["core"], layer=1
    )
    return run


def post(client: Any, run: Run, url: str, data: dict[str, Any], *, htmx: bool = False) -> Any:
    token = csrf_token_of(client.get(f"/app/runs/{run.id}").content.decode())
    headers = {"HTTP_HX_REQUEST": "true"} if htmx else {}
    return client.post(url, {"csrfmiddlewaretoken": token, **data}, **headers)


def test_at_the_gate_each_task_has_a_labelled_form_and_the_plan_can_be_added_to(
    browser: Any, gated: Run
) -> None:
    html = browser.get(f"/app/runs/{gated.id}").content.decode()

    for text in (
        '<label for="title-core">Title of core</label>',
        '<label for="files-cli">Files of cli</label>',
        "<legend>cli depends on</legend>",
        ">Save task cli</button>",
        ">Remove task cli</button>",
        '<label for="add-key">Key of the new task</label>',
        '<label for="message-cli">Message to task cli</label>',
    ):
        assert text in html


def test_saving_a_task_from_its_form_edits_the_plan_and_answers_the_card(
    browser: Any, gated: Run, user: Any
) -> None:
    response = post(
        browser,
        gated,
        f"/app/runs/{gated.id}/plan/tasks/cli",
        {"title": "A small CLI", "description": "", "files": "timer/cli.py\ntests/test_cli.py"},
        htmx=True,
    )

    cli = PlanTask.objects.get(run=gated, key="cli")
    assert response.status_code == 200
    assert "Task cli saved." in response.content.decode()
    assert (cli.title, cli.files, cli.depends_on, cli.layer) == (
        "A small CLI",
        ["timer/cli.py", "tests/test_cli.py"],
        [],
        0,
    )
    gated.refresh_from_db()
    assert gated.design["edits"][0]["by"]["email"] == user.email
    rounds = browser.get(f"/app/runs/{gated.id}/rounds").content.decode()
    assert f"Plan changed by {user.email}" in rounds
    assert (
        "Changed task <code>cli</code>: files from timer/cli.py to timer/cli.py, "
        "tests/test_cli.py; title from “CLI” to “A small CLI”; dependencies from core to none"
    ) in rounds


def test_removing_a_task_others_depend_on_is_refused_next_to_it(browser: Any, gated: Run) -> None:
    response = post(browser, gated, f"/app/runs/{gated.id}/plan/tasks/core/remove", {}, htmx=True)

    html = response.content.decode()
    assert response.status_code == 200
    assert "Task &#x27;cli&#x27; depends on &#x27;core&#x27;, which the plan does not have." in html
    assert PlanTask.objects.filter(run=gated).count() == 2


def test_adding_a_task_without_htmx_goes_back_to_the_run_page(browser: Any, gated: Run) -> None:
    response = post(
        browser,
        gated,
        f"/app/runs/{gated.id}/plan/tasks",
        {"key": "report", "title": "Report", "files": "timer/report.py", "depends_on": ["core"]},
    )

    assert response.status_code == 302
    assert PlanTask.objects.get(run=gated, key="report").depends_on == ["core"]


def test_another_users_plan_forms_are_404(gated: Run, other_user: Any) -> None:
    browser = signed_in_client(other_user)
    token = csrf_token_of(browser.get("/").content.decode())

    response = browser.post(
        f"/app/runs/{gated.id}/plan/tasks/cli/remove", {"csrfmiddlewaretoken": token}
    )

    assert response.status_code == 404
    assert PlanTask.objects.filter(run=gated).count() == 2


def test_pause_and_resume_from_the_page(browser: Any, gated: Run) -> None:
    Run.objects.filter(id=gated.id).update(status=Run.Status.RUNNING)
    assert ">Pause</button>" in browser.get(f"/app/runs/{gated.id}").content.decode()

    post(browser, gated, f"/app/runs/{gated.id}/pause", {})
    paused = browser.get(f"/app/runs/{gated.id}").content.decode()
    post(browser, gated, f"/app/runs/{gated.id}/resume", {})

    assert "nothing new starts until you Resume" in paused
    assert ">Resume</button>" in paused
    assert Run.objects.get(id=gated.id).status == Run.Status.QUEUED


def test_a_message_sent_from_the_card_waits_for_the_next_attempt(browser: Any, gated: Run) -> None:
    Run.objects.filter(id=gated.id).update(status=Run.Status.RUNNING)

    response = post(
        browser, gated, f"/app/runs/{gated.id}/tasks/cli/messages", {"text": "Short names"},
        htmx=True,
    )  # fmt: skip

    assert TaskMessage.objects.get().text == "Short names"
    assert json.loads(response["HX-Trigger-After-Swap"]) == {"task-message-sent": {"key": "cli"}}
    assert "waiting for the next coder attempt" in response.content.decode()


def test_the_step_panel_shows_the_messages_a_coder_was_sent(browser: Any, gated: Run) -> None:
    step = Step.objects.create(
        run=gated, role="coder", key="task:cli:coder:1", input={"messages": ["Short names"]}
    )

    html = browser.get(f"/app/runs/{gated.id}/steps/{step.id}").content.decode()

    assert "Messages it was sent" in html
    assert "<q>Short names</q>" in html


def test_the_generate_form_asks_for_a_forecast_as_it_changes(browser: Any, project: Any) -> None:
    page = browser.get(f"/app/projects/{project.id}").content.decode()
    token = csrf_token_of(page)

    response = browser.post(
        f"/app/projects/{project.id}/estimate",
        {"csrfmiddlewaretoken": token, "prompt": "A CLI timer", "max_fix_attempts": "2"},
        HTTP_HX_REQUEST="true",
    )

    assert 'hx-trigger="load, input delay:600ms from:#generate-form' in page
    assert "Expected cost $0.00" in response.content.decode()
    assert "A stated default" in response.content.decode()


def test_the_forecast_says_why_it_cannot_be_made(browser: Any, project: Any) -> None:
    token = csrf_token_of(browser.get(f"/app/projects/{project.id}").content.decode())

    response = browser.post(
        f"/app/projects/{project.id}/estimate",
        {"csrfmiddlewaretoken": token, "prompt": "x", "max_fix_attempts": "many"},
    )

    assert "No forecast: Enter a whole number." in response.content.decode()
