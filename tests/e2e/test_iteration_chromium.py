"""Follow up, Fork from here and Compare in a real browser (Chromium, Playwright), against
daphne and a real Celery worker with the offline model (a labelled test double).

A person generates a run, follows it up with a prompt ("Follow up"), forks the follow-up
from coding with another model chain ("Fork from here" on the run), forks again from one
step ("Fork from here" in the step's panel), and compares two runs ("Compare"): every button
is found by its role and accessible name, every page passes axe's WCAG checks and its strict
Content Security Policy, and the screenshots are saved for a person to look at.
"""

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pipeline.models import Run, Step
from tests.e2e.conftest import DESKTOP, PHONE, RUN_WAIT_MS, assert_accessible, screenshot_dir
from tests.factories import DEFAULT_PASSWORD, ProjectFactory
from tests.net import ROOT, subprocess_env, web_server

pytestmark = [pytest.mark.slow, pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

OTHER_CHAIN = "offline:offline-b"


@pytest.fixture
def web_url(transactional_db: Any, tmp_path: Path) -> Iterator[str]:
    """daphne on this test run's data, configured with a second chain the forms can offer."""
    if not (ROOT / "node_modules" / "htmx.org").is_dir():
        pytest.fail("The dashboard's browser packages are missing: run `npm ci` (make test does).")
    env = subprocess_env(LLM_CHAIN_DEFAULT=f"offline:offline,{OTHER_CHAIN}")
    with (tmp_path / "daphne.log").open("wb") as log, web_server(env=env, stderr=log) as (url, _):
        yield url


@pytest.fixture
def offline_model(settings: Any) -> None:
    # Quick model calls, and a static review instead of the sandbox (it has tests of its own).
    settings.OFFLINE_LATENCY_MS = 50
    settings.SANDBOX_TESTS_ENABLED = False


def sign_in(page: Any, web_url: str, user: Any) -> None:
    page.goto(web_url + "/")
    page.get_by_label("Email").fill(user.email)
    page.get_by_label("Password").fill(DEFAULT_PASSWORD)
    page.get_by_role("button", name="Sign in", exact=True).click()
    page.get_by_role("heading", name="Your projects").wait_for()


def run_id_of(page: Any) -> int:
    page.wait_for_url(re.compile(r"/app/runs/\d+$"))
    return int(page.url.rsplit("/", 1)[1])


def wait_completed(page: Any) -> None:
    status = page.get_by_role("region", name="Status").get_by_text("Completed", exact=True)
    status.wait_for(timeout=RUN_WAIT_MS)


def shoot(page: Any, name: str) -> None:
    page.screenshot(path=str(screenshot_dir() / f"{name}.png"), full_page=True)


def test_a_person_follows_up_forks_and_compares_runs_in_the_browser(
    web_url: str, page: Any, user: Any, celery_worker: Any, offline_model: None
) -> None:
    project = ProjectFactory(owner=user, name="Shopping list")
    sign_in(page, web_url, user)
    page.get_by_role("link", name="Shopping list").click()
    page.get_by_label("Prompt").fill("A shopping list manager")
    page.get_by_role("button", name="Generate").click()
    first = run_id_of(page)
    wait_completed(page)

    # Follow up: a prompt, then the button; the new run builds on this one.
    page.get_by_label("What to change").fill("Add a report")
    page.get_by_role("button", name="Follow up").click()
    follow_up = run_id_of(page)
    assert follow_up != first
    wait_completed(page)
    summary = page.get_by_role("region", name="Status")
    summary.get_by_role("link", name=f"run {first}").wait_for()
    changes = page.get_by_role("region", name=f"Changes from run {first}")
    changes.get_by_role("article", name="Added: shopping_list/report.py").wait_for(
        timeout=RUN_WAIT_MS
    )
    assert changes.get_by_role("article", name="Changed: shopping_list/core.py").count() == 1
    assert Run.objects.get(id=follow_up).base_run_id == first
    assert_accessible(page)
    shoot(page, "follow-up")
    page.set_viewport_size(PHONE)
    shoot(page, "follow-up-phone")
    page.set_viewport_size(DESKTOP)

    # Fork from here: from coding, with another chain; the design steps are reused.
    page.get_by_label("Go on from").select_option("coding")
    page.get_by_label("Model for the new run").select_option(OTHER_CHAIN)
    page.get_by_role("button", name="Fork from here").click()
    fork = run_id_of(page)
    wait_completed(page)
    page.get_by_role("region", name="Status").get_by_text(
        re.compile(rf"Forked from run {follow_up} at coding: 3 steps reused")
    ).wait_for()
    forked = Run.objects.get(id=fork)
    assert (forked.forked_from_id, forked.fork_point, forked.options["providers"]) == (
        follow_up,
        "coding",
        [OTHER_CHAIN],
    )
    assert sorted(Step.objects.filter(run=forked, reused=True).values_list("key", flat=True)) == [
        "design:1:architect",
        "design:1:planner",
        "orchestrate",
    ]
    page.get_by_role("button", name="Open step design:1:architect").click()
    panel = page.get_by_role("region", name="Step details")
    panel.get_by_text("reused", exact=True).wait_for()
    assert_accessible(page)
    shoot(page, "fork")

    # Fork from one step, in its panel: that step and what follows run again.
    page.get_by_role("button", name="Open step task:report:coder:1").click()
    panel.get_by_role("heading", name=re.compile(r"Step task:report:coder:1")).wait_for()
    panel.get_by_role("button", name="Fork from here").click()
    step_fork = run_id_of(page)
    wait_completed(page)
    assert Run.objects.get(id=step_fork).fork_point == "task:report:coder:1"
    assert "task:report:coder:1" not in set(
        Step.objects.filter(run_id=step_fork, reused=True).values_list("key", flat=True)
    )

    # Compare: tick two runs on the project page.
    page.get_by_role("link", name="Runs", exact=True).click()
    page.get_by_label(f"Compare run {follow_up}").check()
    page.get_by_label(f"Compare run {fork}").check()
    page.get_by_role("button", name="Compare").click()
    figures = page.get_by_role("table", name=f"Runs {follow_up}, {fork} side by side")
    figures.wait_for()
    assert figures.get_by_role("row", name=re.compile(r"^Steps \(reused\)")).inner_text().split(
        "\t"
    )[1:] == [
        f"{Step.objects.filter(run_id=follow_up).count()} (0)",
        f"{Step.objects.filter(run_id=fork).count()} (3)",
    ]
    page.get_by_role("heading", name=f"Run {follow_up} → run {fork}").wait_for()
    assert_accessible(page)
    shoot(page, "compare")
    page.set_viewport_size(PHONE)
    shoot(page, "compare-phone")
    assert project.runs.count() == 4
