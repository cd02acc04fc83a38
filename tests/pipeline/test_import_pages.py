"""The dashboard's Import form (git, or an upload), the baseline on the project page, and what
the run page says of an import and of a run's regressions."""

import io
from pathlib import Path
from typing import Any

import pytest

from pipeline.models import BaselineTest, Run, RunImport, Step
from tests.page_helpers import csrf_token_of, page_post, signed_in_client
from tests.pipeline.repo_fixtures import CALC_FILES, tar_gz

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _media(tmp_path: Path, settings: Any) -> None:
    settings.MEDIA_ROOT = str(tmp_path / "media")


@pytest.fixture
def browser(user: Any) -> Any:
    return signed_in_client(user)


def upload(name: str, data: bytes) -> io.BytesIO:
    handle = io.BytesIO(data)
    handle.name = name
    return handle


def test_a_new_project_page_offers_the_import_form_first(browser, project):
    html = browser.get(f"/app/projects/{project.id}").content.decode()

    assert html.index("Import a repository") < html.index("Start a generation")
    for label in ('for="git_url">Repository URL', 'for="archive">Archive (.zip or .tar.gz)'):
        assert label in html


def test_the_git_form_starts_an_import_run_and_opens_its_page(browser, project, settings):
    settings.REPOSITORY_ALLOWED_HOSTS = ["git.example.org"]

    response = page_post(
        browser,
        f"/app/projects/{project.id}/import",
        {"source": "git", "git_url": "https://git.example.org/calc.git", "git_ref": "main"},
        form_page=f"/app/projects/{project.id}",
    )

    run = Run.objects.get(project=project)
    assert (response.status_code, response["Location"]) == (302, f"/app/runs/{run.id}")
    assert (run.kind, run.import_source.url, run.import_source.ref) == (
        "import",
        "https://git.example.org/calc.git",
        "main",
    )


def test_an_uploaded_archive_starts_an_import(browser, project):
    token = csrf_token_of(browser.get(f"/app/projects/{project.id}").content.decode())

    response = browser.post(
        f"/app/projects/{project.id}/import",
        {
            "csrfmiddlewaretoken": token,
            "source": "archive",
            "archive": upload("calc.tar.gz", tar_gz(CALC_FILES)),
        },
    )

    run = Run.objects.get(project=project)
    assert response.status_code == 302
    assert (run.import_source.source, run.import_source.archive_name) == ("archive", "calc.tar.gz")


def test_an_upload_past_the_limit_is_refused_next_to_the_field(
    browser, project, settings, tmp_path
):
    settings.REPOSITORY_IMPORT_MAX_UPLOAD_BYTES = 2000
    token = csrf_token_of(browser.get(f"/app/projects/{project.id}").content.decode())

    response = browser.post(
        f"/app/projects/{project.id}/import",
        {
            "csrfmiddlewaretoken": token,
            "source": "archive",
            "archive": upload("big.zip", b"PK" * 5000),
        },
    )

    html = response.content.decode()
    assert response.status_code == 413
    assert 'id="archive-error">The archive is larger than the 2000 bytes an upload may have' in html
    assert not Run.objects.exists()
    assert not (tmp_path / "media" / "imports").exists()


def test_a_refused_url_is_said_next_to_its_field(browser, project):
    response = page_post(
        browser,
        f"/app/projects/{project.id}/import",
        {"source": "git", "git_url": "file:///etc"},
        form_page=f"/app/projects/{project.id}",
    )

    html = response.content.decode()
    assert response.status_code == 400
    assert (
        'id="git_url-error">file:// remotes are not allowed (REPOSITORY_ALLOW_LOCAL is off).'
        in html
    )


def test_the_import_form_needs_its_csrf_token(browser, project, settings):
    settings.REPOSITORY_ALLOWED_HOSTS = ["git.example.org"]

    response = browser.post(
        f"/app/projects/{project.id}/import",
        {"source": "git", "git_url": "https://git.example.org/calc.git"},
    )

    assert response.status_code == 403
    assert not Run.objects.exists()


def test_another_users_project_cannot_be_imported_into(browser, other_user, settings):
    from tests.factories import ProjectFactory

    settings.REPOSITORY_ALLOWED_HOSTS = ["git.example.org"]
    theirs = ProjectFactory(owner=other_user)
    token = csrf_token_of(browser.get("/").content.decode())

    response = browser.post(
        f"/app/projects/{theirs.id}/import",
        {"csrfmiddlewaretoken": token, "source": "git", "git_url": "https://git.example.org/x.git"},
    )

    assert response.status_code == 404
    assert not Run.objects.exists()


def imported(project: Any) -> Run:
    run = Run.objects.create(project=project, kind="import", prompt="Import x", status="completed")
    RunImport.objects.create(
        run=run,
        source="git",
        url="https://git.example.org/calc.git",
        ref="main",
        commit="c" * 40,
        files=6,
        bytes=600,
        binary=["assets/logo.png"],
        baseline_status="failed",
        baseline_command="python -m pytest",
        baseline_counts={"passed": 1, "failed": 1, "errors": 0, "skipped": 0},
    )
    BaselineTest.objects.create(
        run=run, test_id="tests/test_ops.py::test_add_adds", outcome="passed"
    )
    BaselineTest.objects.create(run=run, test_id="tests/test_ops.py::test_broken", outcome="failed")
    return run


def test_the_project_page_shows_the_baseline_failing_tests_first(browser, project):
    imported(project)

    html = browser.get(f"/app/projects/{project.id}").content.decode()

    assert "Baseline: the repository's own tests" in html
    assert "<code>python -m pytest</code>" in html
    assert html.index("test_broken") < html.index("test_add_adds")


def test_the_run_page_of_an_import_says_where_it_came_from(browser, project):
    run = imported(project)

    html = browser.get(f"/app/runs/{run.id}").content.decode()

    assert "<code>https://git.example.org/calc.git</code> at <code>main</code>" in html
    assert f"<code>{'c' * 40}</code>" in html
    assert "1 binary, never shown to a model" in html
    assert 'id="task-graph"' not in html
    assert "Fork from here" not in html


def test_the_run_page_lists_regressions_and_those_fixed_in_the_loop(browser, project):
    base = imported(project)
    run = Run.objects.create(project=project, prompt="change", status="failed", base_run=base)
    for attempt, regressions in ((1, ["tests/test_ops.py::test_add_adds"]), (2, [])):
        Step.objects.create(
            run=run,
            role="tester",
            key=f"integrate:suite:{attempt}",
            attempt=attempt,
            status="succeeded",
            output={"passed": not regressions, "regressions": regressions},
        )

    html = browser.get(f"/app/runs/{run.id}").content.decode()

    assert "<strong>Regressions:</strong> none so far" in html
    assert "Caught and fixed in the loop: <code>tests/test_ops.py::test_add_adds</code>" in html
