"""Per-user caps: how many projects an account may have, and how much disk the workspace
images of its projects may take together (refused with a plain reason and a code)."""

import os
import re
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from django.db import connection

from projects.models import Project
from projects.quotas import WorkspaceLimitReached, workspace_lease_within_cap
from projects.services import project_create
from projects.workspace import workspace_image_for_project, workspace_remove, workspace_root
from tests.factories import ProjectFactory
from tests.page_helpers import page_post, signed_in_client

# --- Projects --------------------------------------------------------------------------------


@pytest.fixture
def two_projects_at_most(settings: Any) -> None:
    settings.PROJECTS_MAX_PER_USER = 2


def _create(client: Any, name: str) -> Any:
    return client.post("/projects", {"name": name}, format="json")


@pytest.mark.django_db
def test_a_project_past_the_accounts_cap_is_refused_with_a_reason(api_client, two_projects_at_most):
    assert [_create(api_client, name).status_code for name in ("one", "two")] == [201, 201]

    response = _create(api_client, "three")

    assert response.status_code == 403
    assert response.json() == {
        "detail": "You have 2 projects, the most one account may have (2). "
        "Delete a project to create another.",
        "code": "project_limit",
        "max_projects": 2,
    }
    assert Project.objects.count() == 2


@pytest.mark.django_db
def test_deleting_a_project_makes_room_for_another(api_client, two_projects_at_most):
    first = _create(api_client, "one").json()
    _create(api_client, "two")

    api_client.delete(f"/projects/{first['id']}")

    assert _create(api_client, "three").status_code == 201


@pytest.mark.django_db
def test_another_users_projects_do_not_count(api_client, other_user, two_projects_at_most):
    ProjectFactory.create_batch(2, owner=other_user)

    assert _create(api_client, "mine").status_code == 201


@pytest.mark.django_db
def test_the_new_project_form_says_why_next_to_it(user, two_projects_at_most):
    ProjectFactory.create_batch(2, owner=user)
    client = signed_in_client(user)

    response = page_post(client, "/app/projects/new", {"name": "three"})

    html = response.content.decode()
    form = re.search(r'<h2 id="create-title">New project</h2>(.*?)</form>', html, re.S)
    assert response.status_code == 403
    assert form is not None
    alert = 'role="alert"><p>You have 2 projects, the most one account may have (2).'
    assert alert in form.group(1)
    assert 'value="three"' in form.group(1)  # what was typed is kept
    assert Project.objects.filter(owner=user).count() == 2


@pytest.mark.django_db(transaction=True)
def test_projects_created_at_once_stop_at_the_cap(user, settings):
    settings.PROJECTS_MAX_PER_USER = 3
    start = threading.Barrier(10)
    refused: list[str] = []

    def create(n: int) -> None:
        start.wait()
        try:
            project_create(owner=user, name=f"p{n}")
        except Exception as exc:
            refused.append(getattr(exc, "code", repr(exc)))
        finally:
            connection.close()

    threads = [threading.Thread(target=create, args=(n,)) for n in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert Project.objects.filter(owner=user).count() == 3
    assert refused == ["project_limit"] * 7


# --- Workspace images ------------------------------------------------------------------------

needs_root = pytest.mark.skipif(
    os.geteuid() != 0, reason="workspace images are made (mkfs, mount) only when run as root"
)


@pytest.fixture
def small_images(settings: Any) -> Iterator[list[Project]]:
    """16 MB images and 32 MB per account: two projects' workspaces fit, a third does not.
    Yields a list to which tests add the projects whose workspaces they made."""
    settings.SANDBOX_WORKSPACE_MB = 16
    settings.WORKSPACE_MAX_TOTAL_MB_PER_USER = 32
    made: list[Project] = []
    yield made
    for project in made:
        workspace_remove(workspace=workspace_root() / "projects" / str(project.pk))


def _open_workspace(project: Project, made: list[Project]) -> None:
    made.append(project)
    workspace_lease_within_cap(project=project).release()


def _ticket(client: Any, project: Project) -> Any:
    return client.post(f"/projects/{project.pk}/terminal/ticket")


@needs_root
@pytest.mark.django_db
def test_a_terminal_whose_new_image_would_pass_the_accounts_disk_cap_is_refused(
    api_client, user, small_images
):
    first, second, third = ProjectFactory.create_batch(3, owner=user)
    _open_workspace(first, small_images)
    _open_workspace(second, small_images)

    response = _ticket(api_client, third)

    assert response.status_code == 403
    assert response.json() == {
        "detail": "Your projects' workspaces take 32 MB of the 32 MB one account may use, and "
        "this project's would take 16 MB more. Delete a project whose terminal you no longer "
        "need to make room.",
        "code": "workspace_limit",
        "used_mb": 32,
        "max_mb": 32,
    }
    assert not workspace_image_for_project(project_id=third.pk).exists()
    assert _ticket(api_client, first).status_code == 201  # its image is there already


@needs_root
@pytest.mark.django_db
def test_deleting_a_project_frees_its_workspace_image(api_client, user, small_images):
    first, second, third = ProjectFactory.create_batch(3, owner=user)
    _open_workspace(first, small_images)
    _open_workspace(second, small_images)

    assert api_client.delete(f"/projects/{first.pk}").status_code == 204

    assert _ticket(api_client, third).status_code == 201


@needs_root
@pytest.mark.django_db
def test_another_users_workspace_images_do_not_count(api_client, user, other_user, small_images):
    for project in ProjectFactory.create_batch(2, owner=other_user):
        _open_workspace(project, small_images)

    assert _ticket(api_client, ProjectFactory.create(owner=user)).status_code == 201


@needs_root
@pytest.mark.django_db(transaction=True)
def test_two_terminals_opening_at_once_cannot_both_take_the_last_image(user, small_images):
    _open_workspace(ProjectFactory.create(owner=user), small_images)
    contenders = ProjectFactory.create_batch(2, owner=user)
    small_images.extend(contenders)
    start = threading.Barrier(2)
    outcomes: list[str] = []

    def open_terminal(project: Project) -> None:
        start.wait()
        try:
            workspace_lease_within_cap(project=project).release()
            outcomes.append("opened")
        except WorkspaceLimitReached as exc:
            outcomes.append(exc.code)
        finally:
            connection.close()

    threads = [threading.Thread(target=open_terminal, args=(p,)) for p in contenders]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(outcomes) == ["opened", "workspace_limit"]
    images = [workspace_image_for_project(project_id=p.pk).exists() for p in contenders]
    assert sorted(images) == [False, True]
