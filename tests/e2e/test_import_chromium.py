"""Import a repository and change it, in a real browser (Chromium, Playwright), against daphne,
a real Celery worker, the sandbox and the offline model (a labelled test double).

A person opens a new project, imports a fixture repository from the local git server (``git
http-backend``) with the Import form, follows the import run to Completed, sees the baseline
(the repository's own tests) on the project page, asks for a change on the import's page, and
sees the run pass without regressions and its diff against the imported tree. Every control
is found by its role and accessible name; every page passes axe's WCAG checks and its strict
Content Security Policy; screenshots are saved for a person to look at.
"""

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pipeline.models import Run, RunImport
from tests.e2e.conftest import DESKTOP, PHONE, RUN_WAIT_MS, assert_accessible, screenshot_dir
from tests.factories import DEFAULT_PASSWORD, ProjectFactory
from tests.git_server import GitHttpServer, make_bare
from tests.net import ROOT, subprocess_env, web_server
from tests.pipeline.repo_fixtures import calc_repository

pytestmark = [pytest.mark.slow, pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

LOCAL = {"REPOSITORY_ALLOW_LOCAL": "true", "REPOSITORY_ALLOWED_HOSTS": "127.0.0.1,localhost"}


@pytest.fixture
def web_url(transactional_db: Any, tmp_path: Path) -> Iterator[str]:
    """daphne on this test run's data, allowed to take imports from this machine."""
    if not (ROOT / "node_modules" / "htmx.org").is_dir():
        pytest.fail("The dashboard's browser packages are missing: run `npm ci` (make test does).")
    env = subprocess_env(**LOCAL)
    with (tmp_path / "daphne.log").open("wb") as log, web_server(env=env, stderr=log) as (url, _):
        yield url


@pytest.fixture
def git_server(tmp_path: Path, settings: Any) -> Iterator[GitHttpServer]:
    """The calc repository served over smart HTTP; the worker may fetch from this machine."""
    settings.REPOSITORY_ALLOW_LOCAL = True
    settings.REPOSITORY_ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
    settings.OFFLINE_LATENCY_MS = 50
    calc_repository(tmp_path / "calc")
    make_bare(tmp_path / "srv", "calc.git", tmp_path / "calc")
    with GitHttpServer(tmp_path / "srv") as server:
        yield server


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
    page.set_viewport_size(PHONE)
    page.screenshot(path=str(screenshot_dir() / f"{name}-phone.png"), full_page=True)
    page.set_viewport_size(DESKTOP)


def test_a_person_imports_a_repository_and_changes_it_in_the_browser(
    web_url: str, page: Any, user: Any, celery_worker: Any, git_server: GitHttpServer
) -> None:
    ProjectFactory(owner=user, name="Calc")
    sign_in(page, web_url, user)
    page.get_by_role("link", name="Calc").click()
    assert_accessible(page)
    shoot(page, "import-form")

    page.get_by_label("Repository URL").fill(f"{git_server.url}/calc.git")
    page.get_by_label("Branch, tag or commit (optional)").fill("main")
    page.get_by_role("button", name="Import from git").click()
    imported = run_id_of(page)
    wait_completed(page)
    summary = page.get_by_role("region", name="Status")
    summary.get_by_text(re.compile(r"passed: 2 passed, 0 failed, 0 errors")).wait_for()
    assert Run.objects.get(id=imported).kind == "import"
    assert RunImport.objects.get(run_id=imported).baseline_status == "passed"
    assert_accessible(page)
    shoot(page, "import-run")

    page.get_by_role("link", name="Runs", exact=True).click()
    baseline = page.get_by_role("region", name="Baseline: the repository's own tests")
    baseline.get_by_text("2 tests").click()
    baseline.get_by_role("cell", name="tests/test_ops.py::test_add_adds").wait_for()
    assert_accessible(page)
    shoot(page, "import-baseline")

    page.get_by_role("link", name=f"Run {imported}", exact=True).click()
    page.get_by_label("What to change").fill("Add a way to add many pairs at once")
    page.get_by_role("button", name="Follow up").click()
    change = run_id_of(page)
    wait_completed(page)
    page.get_by_role("region", name="Status").get_by_text(
        re.compile(r"Regressions: none: every test that passed in the baseline still passes")
    ).wait_for()
    changes = page.get_by_role("region", name=f"Changes from run {imported}")
    changes.get_by_role("article", name="Changed: calc/ops.py").wait_for(timeout=RUN_WAIT_MS)
    changes.get_by_role("article", name="Added: tests/test_ops_add_all.py").wait_for()
    assert Run.objects.get(id=change).base_run_id == imported
    assert_accessible(page)
    shoot(page, "import-change")
