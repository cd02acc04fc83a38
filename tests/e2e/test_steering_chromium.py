"""Steering a run in a real browser (Chromium, Playwright) against daphne and a real Celery
worker with the offline model (a labelled test double).

A person watches the forecast change as they write the prompt, asks for the approval gate,
edits the plan in the Tasks card under the graph (renames one task, removes another),
approves, and sees the run build the edited plan. Then they pause a run from its page,
send a message to a task while it is paused, and resume it. Every control is found by its
role and accessible name, every page passes axe's WCAG checks and its strict Content
Security Policy, and screenshots are saved for a person to look at.
"""

import re
from typing import Any

import pytest

from pipeline.models import Run, Step, TaskMessage
from tests.e2e.conftest import DESKTOP, PHONE, RUN_WAIT_MS, assert_accessible, screenshot_dir
from tests.e2e.test_iteration_chromium import run_id_of, sign_in, wait_completed
from tests.factories import ProjectFactory

pytestmark = [pytest.mark.slow, pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def offline_model(settings: Any) -> Any:
    # Quick model calls, and a static review instead of the sandbox (it has tests of its own).
    settings.OFFLINE_LATENCY_MS = 50
    settings.SANDBOX_TESTS_ENABLED = False
    return settings


def shoot(page: Any, name: str) -> None:
    # caret="initial": Playwright's caret hiding puts a style attribute on every field, which
    # an htmx swap landing meanwhile copies, and the page's CSP (rightly) refuses.
    page.screenshot(path=str(screenshot_dir() / f"{name}.png"), full_page=True, caret="initial")


def status_badge(page: Any, text: str) -> Any:
    return page.get_by_role("region", name="Status").get_by_text(text, exact=True)


def test_a_person_edits_the_plan_at_the_gate_and_the_run_builds_the_edit(
    web_url: str, page: Any, user: Any, celery_worker: Any, offline_model: Any
) -> None:
    ProjectFactory(owner=user, name="Budget planner")
    sign_in(page, web_url, user)
    page.get_by_role("link", name="Budget planner").click()

    # The forecast follows the form: a stated default before any run has finished.
    forecast = page.get_by_role("status", name="Forecast of the run")
    forecast.get_by_text(re.compile(r"Expected cost")).wait_for()
    page.get_by_label("Prompt").fill("A budget planner for students")
    forecast.get_by_text(re.compile(r"A stated default")).wait_for()
    page.get_by_text("Options", exact=True).click()
    page.get_by_label("Wait for my approval of the design").check()
    shoot(page, "steer-generate-forecast")
    page.wait_for_load_state("networkidle")  # the last forecast has arrived
    page.get_by_role("button", name="Generate").click()
    run_id = run_id_of(page)
    status_badge(page, "Awaiting Approval").wait_for(timeout=RUN_WAIT_MS)

    # The Tasks card, under the graph: rename storage, remove cli.
    tasks = page.get_by_role("region", name="Tasks")
    tasks.get_by_label("Title of storage").fill("Keep the budgets in a JSON file")
    tasks.get_by_role("button", name="Save task storage").click()
    tasks.get_by_text("Task storage saved.").wait_for()
    tasks.get_by_role("button", name="Remove task cli").click()
    tasks.get_by_text("Task cli removed.").wait_for()
    graph = page.get_by_role("group", name="Task graph: 2 tasks")
    graph.wait_for()
    rounds = page.get_by_role("region", name="Design rounds")
    rounds.get_by_role("heading", name=re.compile(f"Plan changed by {user.email}")).first.wait_for()
    assert_accessible(page)
    shoot(page, "steer-plan-edited")
    page.set_viewport_size(PHONE)
    shoot(page, "steer-plan-edited-phone")
    page.set_viewport_size(DESKTOP)

    page.get_by_role("button", name="Approve").click()
    wait_completed(page)

    run = Run.objects.get(id=run_id)
    assert set(Step.objects.filter(run=run, role="coder").values_list("key", flat=True)) == {
        "task:core:coder:1",
        "task:storage:coder:1",
    }
    assert [edit["by"]["email"] for edit in run.design["edits"]] == [user.email, user.email]
    page.get_by_role("article", name=re.compile(r"Keep the budgets in a JSON file")).wait_for()
    shoot(page, "steer-plan-completed")


def test_a_person_pauses_a_run_messages_a_task_and_resumes_it_from_the_page(
    web_url: str, page: Any, user: Any, celery_worker: Any, offline_model: Any
) -> None:
    offline_model.OFFLINE_LATENCY_MS = 1500
    ProjectFactory(owner=user, name="Habit tracker")
    sign_in(page, web_url, user)
    page.get_by_role("link", name="Habit tracker").click()
    page.get_by_label("Prompt").fill("A habit tracker with streaks")
    page.get_by_role("button", name="Generate").click()
    run_id = run_id_of(page)
    page.get_by_role("region", name="Tasks").get_by_label("Message to task cli").wait_for(
        timeout=RUN_WAIT_MS
    )

    page.get_by_role("button", name="Pause").click()
    status_badge(page, "Paused").wait_for()
    page.get_by_text("nothing new starts until you Resume").wait_for()
    tasks = page.get_by_role("region", name="Tasks")
    tasks.get_by_label("Message to task cli").fill("Name the command 'habits'.")
    tasks.get_by_role("button", name="Send to cli").click()
    tasks.get_by_text("waiting for the next coder attempt").wait_for()
    assert tasks.get_by_label("Message to task cli").input_value() == ""
    assert_accessible(page)
    shoot(page, "steer-paused")

    page.get_by_role("button", name="Resume").click()
    wait_completed(page)

    message = TaskMessage.objects.get(run_id=run_id)
    assert message.step is not None
    assert message.step.key == "task:cli:coder:1"
    assert Run.objects.get(id=run_id).paused_seconds > 0
    page.get_by_text("read by coder attempt 1").wait_for()
    shoot(page, "steer-resumed")
