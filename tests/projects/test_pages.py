"""The project pages: the list at ``/``, create, rename, delete, the files viewer and the diff."""

import re
from typing import Any

import pytest

from pipeline.models import Run
from projects.artifacts import artifact_store_tree
from projects.models import Project
from tests.factories import ProjectFactory, UserFactory
from tests.page_helpers import page_post, signed_in_client

pytestmark = pytest.mark.django_db


@pytest.fixture
def browser(user: Any) -> Any:
    return signed_in_client(user)


def _run_with_files(project: Any, files: dict[str, str | bytes], status: str = "completed") -> Run:
    run = Run.objects.create(project=project, created_by=project.owner, prompt="x", status=status)
    artifact_store_tree(run=run, files=files)
    return run


def test_the_list_shows_each_projects_latest_run_status(browser, user):
    project = ProjectFactory(owner=user, name="Timer")
    Run.objects.create(project=project, created_by=user, prompt="a", status="failed")
    latest = Run.objects.create(project=project, created_by=user, prompt="b", status="running")
    ProjectFactory(owner=UserFactory(), name="Somebody else's")

    html = browser.get("/").content.decode()

    assert "Timer" in html
    assert f'aria-label="Run {latest.id} of Timer: running"' in html
    assert "Somebody else" not in html


def test_create_project_validates_with_the_api_serializer_and_opens_it(browser, user):
    response = page_post(browser, "/app/projects/new", {"name": "  Kettle  ", "description": ""})
    project = Project.objects.get(owner=user)
    assert (response.status_code, response["Location"]) == (302, f"/app/projects/{project.id}")
    assert project.name == "Kettle"


def test_create_project_without_a_name_says_so_next_to_the_field(browser, user):
    response = page_post(browser, "/app/projects/new", {"name": "   "})
    assert response.status_code == 400
    assert re.search(r'id="name-error">This field may not be blank', response.content.decode())
    assert not Project.objects.filter(owner=user).exists()


def test_rename_changes_the_name(browser, project):
    page_post(
        browser,
        f"/app/projects/{project.id}/rename",
        {"name": "Renamed", "description": "New words"},
        form_page=f"/app/projects/{project.id}",
    )
    project.refresh_from_db()
    assert (project.name, project.description) == ("Renamed", "New words")


def test_delete_asks_first_then_deletes(browser, project):
    confirm = browser.get(f"/app/projects/{project.id}/delete").content.decode()
    assert ">Delete project</button>" in confirm
    assert Project.objects.filter(id=project.id).exists()
    response = page_post(
        browser, f"/app/projects/{project.id}/delete", {}, form_page=f"/app/projects/{project.id}"
    )
    assert response.status_code == 302
    assert not Project.objects.filter(id=project.id).exists()


def test_another_users_project_cannot_be_renamed_or_deleted(project):
    stranger = signed_in_client(UserFactory())
    assert (
        page_post(stranger, f"/app/projects/{project.id}/rename", {"name": "x"}).status_code == 404
    )
    assert page_post(stranger, f"/app/projects/{project.id}/delete", {}).status_code == 404
    project.refresh_from_db()
    assert project.name != "x"


def test_the_files_page_shows_the_tree_and_a_highlighted_file(browser, project):
    run = _run_with_files(
        project, {"pkg/core.py": "def f():\n    return 1\n", "README.md": "# Hi\n"}
    )
    html = browser.get(
        f"/app/projects/{project.id}/files?run={run.id}&path=pkg/core.py"
    ).content.decode()
    assert 'aria-current="page">core.py</a>' in html
    assert '<span class="k">def</span>' in html
    assert f'action="/projects/{project.id}/download"' in html
    assert f'name="run" value="{run.id}"' in html
    assert ">Download zip</button>" in html


def test_a_binary_file_is_not_shown_as_text(browser, project):
    run = _run_with_files(project, {"blob.bin": "\x00\x01"})
    html = browser.get(
        f"/app/projects/{project.id}/files?run={run.id}&path=blob.bin"
    ).content.decode()
    assert "This is a binary file" in html


def test_another_users_files_and_diff_are_404(project):
    run = _run_with_files(project, {"a.py": "1\n"})
    stranger = signed_in_client(UserFactory())
    assert stranger.get(f"/app/projects/{project.id}/files?run={run.id}").status_code == 404
    assert stranger.get(f"/app/projects/{project.id}/diff").status_code == 404


def test_a_run_of_another_project_is_404_on_the_files_page(browser, user, project):
    elsewhere = _run_with_files(ProjectFactory(owner=user), {"a.py": "1\n"})
    assert browser.get(f"/app/projects/{project.id}/files?run={elsewhere.id}").status_code == 404


def test_the_diff_compares_the_two_latest_runs_side_by_side(browser, project):
    older = _run_with_files(project, {"a.py": "one\ntwo\n", "gone.py": "x\n"})
    newer = _run_with_files(project, {"a.py": "one\nTWO\n", "new.py": "y\n"})
    html = browser.get(f"/app/projects/{project.id}/diff").content.decode()
    assert f"Run {older.id} → run {newer.id}" in html
    assert "1 added, 1 removed, 1 changed, 0 unchanged." in html
    assert '<td class="diff-del">two</td>' in html
    assert '<td class="diff-add">TWO</td>' in html


def test_the_unified_diff_marks_lines_added_and_removed(browser, project):
    older = _run_with_files(project, {"a.py": "one\ntwo\n"})
    newer = _run_with_files(project, {"a.py": "one\nTWO\n"})
    html = browser.get(
        f"/app/projects/{project.id}/diff?from={older.id}&to={newer.id}&view=unified"
    ).content.decode()
    assert re.search(
        r'<tr class="diff-del"><td class="ln">2</td><td class="ln"></td><td>-two</td>', html
    )
    assert re.search(
        r'<tr class="diff-add"><td class="ln"></td><td class="ln">2</td><td>\+TWO</td>', html
    )


def test_pages_carry_a_strict_content_security_policy(browser, client, project):
    for response in (client.get("/"), browser.get("/"), browser.get(f"/app/projects/{project.id}")):
        policy = response["Content-Security-Policy"]
        directives = dict(part.strip().split(" ", 1) for part in policy.split(";"))
        assert directives["script-src"] == "'self'"
        assert directives["style-src-attr"] == "'none'"
        assert directives["object-src"] == "'none'"
        assert directives["frame-ancestors"] == "'none'"
        assert "unsafe-inline" not in policy
        assert "unsafe-eval" not in policy
        assert "<script>" not in response.content.decode()
        assert " style=" not in response.content.decode()
