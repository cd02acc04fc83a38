"""OpenAPI schema, docs and admin are served."""

import pytest

pytestmark = pytest.mark.django_db


def test_openapi_schema_lists_the_project_paths(client):
    response = client.get("/api/schema/", HTTP_ACCEPT="application/json")
    assert response.status_code == 200
    assert "/projects/{project_id}" in response.json()["paths"]


def test_swagger_docs_page_is_served(client):
    assert client.get("/api/docs/").status_code == 200


def test_admin_login_page_is_served(client):
    assert client.get("/admin/login/").status_code == 200
