"""The API docs page (/api/docs/, Swagger UI) works in Chromium under the site's strict CSP.

Every page a browser test opens is watched (``tests/e2e/conftest.py``): a CSP violation or a
console error fails the test, so Swagger UI rendering the API's operations here shows that
its script, its styles and the schema all load under the policy.
"""

import pytest

from tests.e2e.conftest import screenshot_dir

pytestmark = [pytest.mark.slow, pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def test_the_api_docs_render_the_operations_under_the_strict_csp(web_url, page):
    response = page.goto(web_url + "/api/docs/")

    policy = response.headers["content-security-policy"]
    assert "script-src 'self';" in policy + ";"
    assert "'unsafe-inline'" not in policy
    page.get_by_role("heading", name="AI Workflow Platform API").wait_for()
    operation = page.locator(".opblock-summary-path", has_text="/projects/{project_id}/generate")
    operation.first.wait_for()
    page.screenshot(path=str(screenshot_dir() / "api-docs.png"), full_page=False)
