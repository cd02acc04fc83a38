"""Project CRUD over HTTP: owner-only, validated, authenticated."""

from datetime import timedelta

import pytest

from projects.models import Project
from tests.factories import ProjectFactory

pytestmark = pytest.mark.django_db


def test_create_project_returns_201_with_the_project(api_client):
    response = api_client.post(
        "/projects", {"name": "My App", "description": "AI app"}, format="json"
    )
    assert response.status_code == 201
    assert response.json()["name"] == "My App"
    assert response.json()["description"] == "AI app"


def test_list_shows_only_the_users_projects(api_client, user, other_user):
    mine = ProjectFactory(owner=user)
    ProjectFactory(owner=other_user)
    response = api_client.get("/projects")
    assert response.status_code == 200
    assert [p["id"] for p in response.json()] == [mine.id]


def test_list_is_newest_first_with_every_field(api_client, user):
    older, newer = ProjectFactory(owner=user), ProjectFactory(owner=user)
    older.created_at = newer.created_at - timedelta(hours=1)
    older.save(update_fields=["created_at"])
    body = api_client.get("/projects").json()
    assert [p["id"] for p in body] == [newer.id, older.id]
    assert body[1] == {
        "id": older.id,
        "name": older.name,
        "description": older.description,
        "created_at": older.created_at.isoformat().replace("+00:00", "Z"),
        "updated_at": Project.objects.get(pk=older.pk)
        .updated_at.isoformat()
        .replace("+00:00", "Z"),
    }


def test_get_patch_delete_own_project(api_client, project):
    assert api_client.get(f"/projects/{project.id}").json()["name"] == project.name
    patched = api_client.patch(f"/projects/{project.id}", {"name": "Renamed"}, format="json")
    assert patched.status_code == 200
    assert patched.json()["name"] == "Renamed"
    assert api_client.delete(f"/projects/{project.id}").status_code == 204
    assert api_client.get(f"/projects/{project.id}").status_code == 404


@pytest.mark.parametrize("method", ["get", "patch", "delete"])
def test_another_users_project_is_404(other_client, project, method):
    response = getattr(other_client, method)(f"/projects/{project.id}", {}, format="json")
    assert response.status_code == 404
    assert response.json()["code"] == "not_found"


def test_bad_input_is_400_with_detail(api_client):
    response = api_client.post("/projects", {"name": ""}, format="json")
    assert response.status_code == 400
    assert "name" in response.json()["detail"]
    assert response.json()["code"] == "invalid"


def test_malformed_json_is_400_with_detail(api_client):
    response = api_client.generic("POST", "/projects", "{not json", content_type="application/json")
    assert response.status_code == 400
    assert "JSON parse error" in response.json()["detail"]


def test_no_token_is_401(anon_client):
    response = anon_client.get("/projects")
    assert response.status_code == 401
    assert response.json()["detail"]


def test_seed_curl_body_without_content_type_creates_a_project(api_client):
    # curl -d without -H Content-Type sends application/x-www-form-urlencoded
    response = api_client.generic(
        "POST",
        "/projects",
        '{"name":"My App","description":"AI-generated application"}',
        content_type="application/x-www-form-urlencoded",
    )
    assert response.status_code == 201
    assert response.json()["name"] == "My App"


def test_form_encoded_body_still_works(api_client):
    response = api_client.post("/projects", {"name": "Formed"})
    assert response.status_code == 201
    assert response.json()["name"] == "Formed"


@pytest.mark.django_db(transaction=True)
def test_deleting_a_project_removes_its_workspace(api_client, project):
    from projects.workspace import workspace_for_project

    workspace = workspace_for_project(project_id=project.id)
    (workspace / "notes.txt").write_text("left by the terminal")
    assert api_client.delete(f"/projects/{project.id}").status_code == 204
    assert not workspace.exists()


@pytest.mark.parametrize("count", [1, 5])
def test_the_list_costs_two_statements_however_many_projects(
    api_client, user, django_assert_max_num_queries, count
):
    ProjectFactory.create_batch(count, owner=user)

    # The session with its user, then the projects.
    with django_assert_max_num_queries(2):
        body = api_client.get("/projects").json()

    assert len(body) == count
