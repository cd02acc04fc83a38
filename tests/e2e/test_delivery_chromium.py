"""Import -> run -> diff -> pull request in a real browser (Chromium, Playwright), against
daphne, a real Celery worker with the offline model (a labelled test double), real git and a
local forge (its API stub and ``git http-backend``).

A person connects the project to its forge on the project page (the token is never shown
back), runs a change on top of the imported repository, reads the diff against the imported
tree, presses "Open pull request" and follows the pull request's link. Every control is found
by its role and accessible name, the pages pass axe's WCAG checks and their strict Content
Security Policy, and the screenshots are saved for a person to look at.

``test_..._from_the_local_git_server`` starts from the project page's Import form: the whole
path, import -> baseline -> run -> diff -> pull request, in the browser.
"""

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pipeline.delivery.selectors import run_tree_bytes
from pipeline.models import Run, RunDelivery
from tests.e2e.conftest import DESKTOP, PHONE, RUN_WAIT_MS, assert_accessible, screenshot_dir
from tests.factories import DEFAULT_PASSWORD, ProjectFactory
from tests.forge_stub import Forge
from tests.git_server import GitHttpServer, git, make_bare, make_repository
from tests.net import ROOT, subprocess_env, web_server
from tests.pipeline.delivery.helpers import make_import_run
from tests.pipeline.offline_trees import build

pytestmark = [pytest.mark.slow, pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

TOKEN = "ghp_BrowserT0kenQq7"
PROMPT = "A shopping list manager"


@pytest.fixture
def local_forge_allowed(settings: Any) -> None:
    """The worker (this process) may reach the local forge."""
    settings.REPOSITORY_ALLOW_LOCAL = True
    settings.REPOSITORY_ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
    settings.OFFLINE_LATENCY_MS = 50
    settings.SANDBOX_TESTS_ENABLED = False  # a static review: the sandbox has its own tests


@pytest.fixture
def web_url(transactional_db: Any, tmp_path: Path) -> Iterator[str]:
    """daphne on this test run's data; the forge settings it checks may name this machine."""
    if not (ROOT / "node_modules" / "htmx.org").is_dir():
        pytest.fail("The dashboard's browser packages are missing: run `npm ci` (make test does).")
    env = subprocess_env(
        REPOSITORY_ALLOW_LOCAL="true", REPOSITORY_ALLOWED_HOSTS="127.0.0.1,localhost"
    )
    with (tmp_path / "daphne.log").open("wb") as log, web_server(env=env, stderr=log) as (url, _):
        yield url


@pytest.fixture
def forge(tmp_path: Path, local_forge_allowed: None) -> Iterator[Forge]:
    """A local forge whose ``acme/app`` holds, on main, the tree of a shopping list app."""
    tree, _ = build(PROMPT)
    with Forge("github", tmp_path / "srv", token=TOKEN) as stub:
        work = tmp_path / "work"
        stub.base = make_repository(work, dict[str, bytes | str](tree))
        stub.tree = tree
        git("push", "-q", str(stub.bare), "main", cwd=work)
        yield stub


def sign_in(page: Any, web_url: str, user: Any) -> None:
    page.goto(web_url + "/")
    page.get_by_label("Email").fill(user.email)
    page.get_by_label("Password").fill(DEFAULT_PASSWORD)
    page.get_by_role("button", name="Sign in", exact=True).click()
    page.get_by_role("heading", name="Your projects").wait_for()


def shoot(page: Any, name: str) -> None:
    page.screenshot(path=str(screenshot_dir() / f"{name}.png"), full_page=True)


def connect_forge(page: Any, forge: Forge) -> None:
    settings_card = page.get_by_role("region", name="Forge")
    settings_card.get_by_label("Forge kind").select_option("github")
    settings_card.get_by_label("Repository").fill(forge.repository)
    settings_card.get_by_label("API URL").fill(forge.api_url)
    settings_card.get_by_label("Access token").fill(TOKEN)
    settings_card.get_by_role("button", name="Save forge settings").click()
    page.get_by_text("Forge settings saved.").wait_for()
    card = page.get_by_role("region", name="Forge")
    card.get_by_text("Token: set; webhook secret: not set; SSH key: not set.").wait_for()
    assert TOKEN not in page.content()


def change_diff_and_pull_request(page: Any, web_url: str, forge: Forge, imported: Run) -> None:
    """From the project page: run a change on the import, read its diff, open its PR."""
    page.get_by_label("Prompt").fill("Add a report")
    page.get_by_label("Build on").select_option(str(imported.pk))
    page.get_by_role("button", name="Generate").click()
    page.wait_for_url(re.compile(r"/app/runs/\d+$"))
    run_id = int(page.url.rsplit("/", 1)[1])
    page.get_by_role("region", name="Status").get_by_text("Completed", exact=True).wait_for(
        timeout=RUN_WAIT_MS
    )

    # The diff against the imported tree: on the run page, and side by side.
    changes = page.get_by_role("region", name=f"Changes from run {imported.pk}")
    before, after = run_tree_bytes(run=imported), run_tree_bytes(run=Run.objects.get(pk=run_id))
    changed = sorted(path for path, data in after.items() if before.get(path) != data)
    assert changed  # the offline model changed the imported code
    kind = "Changed" if changed[0] in before else "Added"
    changes.get_by_role("article", name=f"{kind}: {changed[0]}").wait_for(timeout=RUN_WAIT_MS)
    delivery = page.get_by_role("region", name="Delivery")
    delivery.get_by_role("link", name="Diff against the imported tree").click()
    page.wait_for_url(re.compile(rf"/diff\?from={imported.pk}&to={run_id}$"))
    page.get_by_text(changed[0]).first.wait_for()
    assert_accessible(page)
    shoot(page, "delivery-diff")
    page.go_back()

    # Open the pull request; its link and state appear on the card.
    delivery = page.get_by_role("region", name="Delivery")
    assert delivery.get_by_label("Branch").input_value() == f"aiflow/run-{run_id}"
    delivery.get_by_role("button", name="Open pull request").click()
    page.wait_for_url(re.compile(rf"/app/runs/{run_id}#run-delivery$"))
    link = page.get_by_role("link", name="#1 on acme/app")
    link.wait_for(timeout=RUN_WAIT_MS)
    assert link.get_attribute("href") == f"{forge.server.url}/acme/app/pull/1"
    card = page.get_by_role("region", name="Delivery")
    assert card.locator("#pull-request-state").inner_text() == "open"
    assert card.locator("#delivery-state").inner_text() == "delivered"
    assert card.get_by_role("button", name="Update pull request").count() == 1

    row = RunDelivery.objects.get(run_id=run_id)
    assert (row.state, row.pull_request_number) == ("delivered", 1)
    assert git("rev-list", f"refs/heads/aiflow/run-{run_id}", cwd=forge.bare).split() == [
        row.commit,
        forge.base,
    ]
    assert [(p["head"], p["title"]) for p in forge.pulls] == [
        (f"aiflow/run-{run_id}", "Add a report")
    ]
    assert_accessible(page)
    shoot(page, "delivery-pull-request")
    page.set_viewport_size(PHONE)
    shoot(page, "delivery-pull-request-phone")
    page.set_viewport_size(DESKTOP)


def test_a_person_runs_a_change_on_an_import_and_opens_its_pull_request(
    web_url: str, page: Any, user: Any, celery_worker: Any, forge: Forge
) -> None:
    project = ProjectFactory(owner=user, name="Shopping list")
    imported = make_import_run(
        project, forge.tree, url=forge.clone_url, ref="main", commit=forge.base
    )
    sign_in(page, web_url, user)
    page.get_by_role("link", name="Shopping list", exact=True).click()
    connect_forge(page, forge)
    assert_accessible(page)
    shoot(page, "delivery-forge-settings")

    change_diff_and_pull_request(page, web_url, forge, imported)


def test_a_person_imports_from_the_local_git_server_and_opens_a_pull_request(
    web_url: str,
    page: Any,
    user: Any,
    celery_worker: Any,
    forge: Forge,
    tmp_path: Path,
) -> None:
    ProjectFactory(owner=user, name="Shopping list")
    # The fixture repository, served without a token (the forge's own git wants one).
    make_bare(tmp_path / "public", "app.git", tmp_path / "work")
    sign_in(page, web_url, user)
    page.get_by_role("link", name="Shopping list", exact=True).click()
    with GitHttpServer(tmp_path / "public") as public:
        page.get_by_label("Repository URL").fill(f"{public.url}/app.git")
        page.get_by_label("Branch, tag or commit (optional)").fill("main")
        page.get_by_role("button", name="Import from git").click()
        page.wait_for_url(re.compile(r"/app/runs/\d+$"))
        page.get_by_role("region", name="Status").get_by_text("Completed", exact=True).wait_for(
            timeout=RUN_WAIT_MS
        )
    imported = Run.objects.get(pk=int(page.url.rsplit("/", 1)[1]))
    assert (imported.kind, imported.status, imported.error) == (
        Run.Kind.IMPORT,
        Run.Status.COMPLETED,
        "",
    )
    shoot(page, "delivery-imported")
    page.get_by_role("link", name="Shopping list").first.click()
    connect_forge(page, forge)

    change_diff_and_pull_request(page, web_url, forge, imported)
