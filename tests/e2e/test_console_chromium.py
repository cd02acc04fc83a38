"""The whole console in a real browser, against daphne and a real Celery worker.

A person signs up, signs in, creates a project, generates with the offline model (a labelled
test double) and watches the run page reach "completed" live: the task graph's nodes turn
green without a reload. They open a step and read its output, open a generated file, diff
two runs, download the zip, and list the run's files with ``ls`` in the terminal.
"""

import io
import re
import zipfile
from typing import Any

import pytest
from playwright.sync_api import expect

from pipeline.models import Run
from projects.models import Artifact, Project
from tests.e2e.conftest import DESKTOP, PHONE, RUN_WAIT_MS, assert_accessible, screenshot_dir

pytestmark = [pytest.mark.slow, pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

PASSWORD = "Kettle-Whistle-Harbour-31"
TASKS = ("core", "storage", "cli")


@pytest.fixture
def offline_model(settings: Any) -> None:
    # Each model call takes a moment, so the run page visibly moves; the tester gives a
    # static review (the sandbox has tests of its own; the terminal below uses it).
    settings.OFFLINE_LATENCY_MS = 150
    settings.SANDBOX_TESTS_ENABLED = False


def _sign_up_and_in(page: Any, web_url: str) -> None:
    page.goto(web_url + "/signup")
    assert_accessible(page)
    page.get_by_label("Username").fill("ada")
    page.get_by_label("Email").fill("ada@example.com")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign up").click()
    page.get_by_role("status").filter(has_text="Your account is ready").wait_for()
    assert page.get_by_label("Email").input_value() == "ada@example.com"
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in", exact=True).click()
    page.get_by_role("heading", name="Your projects").wait_for()
    assert_accessible(page)


def _generate(page: Any, prompt: str) -> int:
    page.get_by_label("Prompt").fill(prompt)
    page.get_by_role("button", name="Generate").click()
    page.wait_for_url(re.compile(r"/app/runs/\d+$"))
    return int(page.url.rsplit("/", 1)[1])


def _task_node(page: Any, key: str, status: str = "") -> Any:
    pattern = rf"^Task {re.escape(key)}: .*, {status}," if status else rf"^Task {re.escape(key)}: "
    return page.get_by_role("button", name=re.compile(pattern))


def test_a_person_runs_a_generation_end_to_end_in_the_browser(
    web_url, page, celery_worker, offline_model
):
    navigations: list[str] = []
    page.on(
        "framenavigated",
        lambda frame: navigations.append(frame.url) if frame == page.main_frame else None,
    )

    _sign_up_and_in(page, web_url)
    page.get_by_label("Project name").fill("Todo tool")
    page.get_by_role("button", name="Create project").click()
    page.get_by_role("heading", name="Todo tool").wait_for()
    assert_accessible(page)

    run_id = _generate(page, "A todo list manager with tags")
    loads_of_run_page = len(navigations)

    # Live: the graph appears and every node turns green, without a reload.
    for key in TASKS:
        _task_node(page, key).wait_for(timeout=RUN_WAIT_MS)
    for key in TASKS:
        _task_node(page, key, "succeeded").wait_for(timeout=RUN_WAIT_MS)
    status = page.get_by_role("region", name="Status").get_by_text("Completed", exact=True)
    status.wait_for(timeout=RUN_WAIT_MS)
    assert len(navigations) == loads_of_run_page, navigations
    assert Run.objects.get(id=run_id).status == "completed"
    # The tester fell back to a static review on every task, and the page says so.
    for key in TASKS:
        assert "static review" in _task_node(page, key).get_attribute("aria-label")
    page.get_by_role("status").filter(has_text="The run has ended").wait_for()

    # A step and what it produced.
    page.get_by_role("button", name="Open step task:core:coder:1").click()
    panel = page.get_by_role("region", name="Step details")
    panel.get_by_role("heading", name=re.compile(r"Step task:core:coder:1")).wait_for()
    panel.get_by_text(re.compile(r"Files written \(\d+\)")).wait_for()
    assert panel.get_by_text("coder", exact=True).count() == 1
    assert_accessible(page)
    shots = screenshot_dir()
    page.mouse.wheel(0, -10_000)
    page.screenshot(path=str(shots / "run-desktop.png"))
    page.screenshot(path=str(shots / "run-desktop-full.png"), full_page=True)
    page.set_viewport_size(PHONE)
    page.get_by_role("heading", name=f"Run {run_id}").scroll_into_view_if_needed()
    page.screenshot(path=str(shots / "run-phone.png"))
    page.screenshot(path=str(shots / "run-phone-full.png"), full_page=True)
    page.set_viewport_size(DESKTOP)

    # A generated file, highlighted.
    project = Project.objects.get(name="Todo tool")
    cli = Artifact.objects.get(run_id=run_id, path__endswith="/cli.py")
    page.get_by_role("link", name="Files", exact=True).click()
    page.get_by_role("navigation", name="File tree").get_by_role(
        "link", name="cli.py", exact=True
    ).click()
    viewer = page.get_by_role("region", name=f"Content of {cli.path}")
    viewer.wait_for()
    assert "def " in viewer.inner_text()
    assert_accessible(page)
    page.screenshot(path=str(screenshot_dir() / "files.png"), full_page=True)

    # The zip holds exactly the run's files.
    with page.expect_download() as download_info:
        page.get_by_role("button", name="Download zip").click()
    archive = zipfile.ZipFile(io.BytesIO(open(download_info.value.path(), "rb").read()))  # noqa: SIM115
    assert sorted(archive.namelist()) == sorted(
        Artifact.objects.filter(run_id=run_id).values_list("path", flat=True)
    )

    # A second run of another prompt, and the diff between the two.
    page.get_by_role("link", name="Runs", exact=True).click()
    second = _generate(page, "A recipe box with ratings")
    page.get_by_role("region", name="Status").get_by_text("Completed", exact=True).wait_for(
        timeout=RUN_WAIT_MS
    )
    page.get_by_role("link", name="Diff", exact=True).click()
    page.get_by_role("heading", name=f"Run {run_id} → run {second}").wait_for()
    assert page.get_by_role("article").count() >= 1
    page.get_by_label("Layout").select_option("unified")
    page.get_by_role("button", name="Compare").click()
    page.get_by_role("heading", name=f"Run {run_id} → run {second}").wait_for()
    page.screenshot(path=str(screenshot_dir() / "diff.png"), full_page=True)
    assert_accessible(page)

    # The terminal: the workspace holds the latest run's files.
    page.get_by_role("link", name="Terminal", exact=True).click()
    page.get_by_role("status").filter(has_text="Connected").wait_for()
    terminal = page.get_by_role("region", name="Terminal")
    terminal.click()
    page.keyboard.type("ls\n")
    latest_top = sorted(
        {
            p.split("/", 1)[0]
            for p in Artifact.objects.filter(run_id=second).values_list("path", flat=True)
        }
    )
    for name in latest_top:
        expect(terminal).to_contain_text(name, timeout=RUN_WAIT_MS)
    page.screenshot(path=str(screenshot_dir() / "terminal.png"))
    assert_accessible(page)
    assert project.runs.count() == 2
