"""OpenAPI schema, docs and admin are served."""

import pytest

pytestmark = pytest.mark.django_db


def test_openapi_schema_lists_the_project_paths(client):
    response = client.get("/api/schema/", HTTP_ACCEPT="application/json")
    assert response.status_code == 200
    assert "/projects/{project_id}" in response.json()["paths"]


def test_swagger_docs_page_is_served(client):
    assert client.get("/api/docs/").status_code == 200


def test_the_docs_page_keeps_the_sites_csp_and_loads_only_its_own_files(client):
    import re

    from common.csp import settings_policy

    response = client.get("/api/docs/")
    html = response.content.decode()

    assert response["Content-Security-Policy"] == settings_policy(False)
    assert re.findall(r"<script(?![^>]*\bsrc=)[^>]*>", html) == []  # no inline script
    assert "<style" not in html
    assert sorted(re.findall(r'(?:src|href)="([^"]+)"', html)) == [
        "/api/docs/?script=",
        "/static/css/swagger.css",
        "/static/drf_spectacular_sidecar/swagger-ui-dist/favicon-32x32.png",
        "/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js",
        "/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-standalone-preset.js",
        "/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui.css",
    ]
    script = client.get("/api/docs/?script=")
    assert (script.status_code, script["Content-Type"]) == (200, "application/javascript")
    assert "SwaggerUIBundle(" in script.content.decode()


def test_admin_is_mounted_and_asks_anonymous_users_to_sign_in(client):
    response = client.get("/admin/")
    assert (response.status_code, response["Location"]) == (302, "/admin/login/?next=/admin/")


def test_openapi_schema_validates_without_warnings(tmp_path):
    from django.core.management import call_command

    out = tmp_path / "schema.yml"
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(out))
    text = out.read_text()
    for path in ("/auth/login", "/projects/{project_id}/generate", "/runs/{run_id}/events"):
        assert f"  {path}:" in text


@pytest.mark.slow
def test_the_schema_answers_the_same_document_to_many_threads_at_once_through_daphne():
    import hashlib
    import threading
    import urllib.error
    import urllib.request

    from tests.net import web_server

    answers: list[tuple[int, str]] = []
    start = threading.Barrier(24)

    def fetch(url: str) -> None:
        start.wait(timeout=60)
        for _ in range(4):
            try:
                with urllib.request.urlopen(f"{url}/api/schema/?format=json", timeout=120) as r:
                    answers.append((r.status, hashlib.sha256(r.read()).hexdigest()))
            except urllib.error.HTTPError as exc:
                answers.append((exc.code, ""))

    with web_server() as (url, _):
        threads = [threading.Thread(target=fetch, args=(url,)) for _ in range(24)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=300)
    statuses = [status for status, _ in answers]
    assert statuses == [200] * 96
    assert len({digest for _, digest in answers}) == 1
