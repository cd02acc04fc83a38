"""A reload in the middle of a run loses no event: the page's events log ends up holding every
event of the run exactly once, in order, like the Event table."""

import re
from typing import Any

import pytest
from playwright.sync_api import expect

from pipeline.models import Event, Run
from tests.e2e.conftest import RUN_WAIT_MS
from tests.factories import DEFAULT_PASSWORD

pytestmark = [pytest.mark.slow, pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def slow_offline_model(settings: Any) -> None:
    # Slow enough that the reload lands while coding is under way.
    settings.OFFLINE_LATENCY_MS = 1000
    settings.SANDBOX_TESTS_ENABLED = False


def _logged_seqs(page: Any) -> list[int]:
    items = page.get_by_role("list", name="Events").get_by_role("listitem").all_inner_texts()
    return [int(re.match(r"#(\d+) ", text).group(1)) for text in items]


def test_a_reload_in_the_middle_of_a_run_loses_no_event(
    web_url, page, user, project, celery_worker, slow_offline_model
):
    page.goto(web_url + "/")
    page.get_by_label("Email").fill(user.email)
    page.get_by_label("Password").fill(DEFAULT_PASSWORD)
    page.get_by_role("button", name="Sign in", exact=True).click()
    page.get_by_role("heading", name="Your projects").wait_for()

    page.goto(f"{web_url}/app/projects/{project.id}")
    page.get_by_label("Prompt").fill("A kitchen timer with presets")
    page.get_by_role("button", name="Generate").click()
    page.wait_for_url(re.compile(r"/app/runs/\d+$"))
    run = Run.objects.get(project=project)
    events = page.get_by_role("list", name="Events")
    expect(events.get_by_role("listitem").filter(has_text="step.started")).not_to_have_count(
        0, timeout=RUN_WAIT_MS
    )
    # Reload once the coders are at work (the run is still going).
    coder_started = events.get_by_role("listitem").filter(has_text="step.started coder")
    expect(coder_started.first).to_be_attached(timeout=RUN_WAIT_MS)
    assert Run.objects.get(id=run.id).status in Run.ACTIVE
    page.reload()

    page.get_by_role("status").filter(has_text="The run has ended").wait_for(timeout=RUN_WAIT_MS)
    expect(events.get_by_role("listitem").filter(has_text="run.completed")).to_have_count(1)
    stored = list(Event.objects.filter(run=run).order_by("seq").values_list("seq", flat=True))
    assert Run.objects.get(id=run.id).status == "completed"
    assert _logged_seqs(page) == stored
    assert stored == list(range(1, len(stored) + 1))
