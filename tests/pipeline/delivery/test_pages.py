"""The dashboard's delivery parts: the run page's card (Push branch, Open pull request, the
pull request's link and state, the diff against the imported tree) and the project page's
forge settings form (secrets write-only)."""

from typing import Any

import pytest
from django.utils import timezone

from pipeline.models import Run, RunDelivery
from repositories.models import ForgeConnection
from repositories.services import forge_connection_put
from tests.page_helpers import page_post, signed_in_client
from tests.pipeline.delivery.helpers import make_completed_run, make_import_run

pytestmark = pytest.mark.django_db

TOKEN = "ghp_pageT0kenNeverShown"


@pytest.fixture
def browser(user: Any) -> Any:
    return signed_in_client(user)


@pytest.fixture
def forge_set(project: Any) -> ForgeConnection:
    return forge_connection_put(
        project=project, kind="github", repository="acme/app", token=TOKEN, webhook_secret="s3c"
    )


@pytest.fixture
def run(project: Any) -> Run:
    imported = make_import_run(project, {"app.py": "v1\n"}, commit="c" * 40, ref="main")
    return make_completed_run(project, {"app.py": "v2\n"}, base_run=imported)


def test_the_run_page_offers_push_branch_and_open_pull_request(
    browser: Any, run: Run, forge_set: Any
) -> None:
    html = browser.get(f"/app/runs/{run.pk}").content.decode()

    assert 'id="run-delivery"' in html
    assert f'value="aiflow/run-{run.pk}"' in html
    assert ">Push branch</button>" in html and ">Open pull request</button>" in html
    assert (
        f'href="/app/projects/{run.project_id}/diff?from={run.base_run_id}&amp;to={run.pk}">'
        "Diff against the imported tree</a>"
    ) in html


def test_open_pull_request_asks_for_the_delivery_and_goes_back_to_the_run(
    browser: Any, run: Run, forge_set: Any
) -> None:
    response = page_post(
        browser,
        f"/app/runs/{run.pk}/deliver",
        {"branch": "feature/v2", "pull_request": "1"},
        form_page=f"/app/runs/{run.pk}",
    )

    assert (response.status_code, response["Location"]) == (
        302,
        f"/app/runs/{run.pk}#run-delivery",
    )
    delivery = RunDelivery.objects.get(run=run)
    assert (delivery.branch, delivery.pull_request, delivery.state) == (
        "feature/v2",
        True,
        "queued",
    )
    card = browser.get(f"/app/runs/{run.pk}/delivery").content.decode()
    assert "every 2s" in card  # it refreshes itself while the delivery is under way
    assert ">Open pull request</button>" not in card


def test_a_delivered_run_shows_its_pull_requests_link_and_state(
    browser: Any, run: Run, forge_set: Any
) -> None:
    RunDelivery.objects.create(
        run=run,
        branch="feature/v2",
        state="delivered",
        commit="b" * 40,
        pull_request_number=3,
        pull_request_url="https://github.com/acme/app/pull/3",
        pull_request_state="open",
        requested_at=timezone.now(),
        delivered_at=timezone.now(),
    )

    card = browser.get(f"/app/runs/{run.pk}/delivery").content.decode()

    assert (
        '<a id="pull-request-link" href="https://github.com/acme/app/pull/3" '
        'rel="noopener noreferrer" target="_blank">#3 on acme/app</a>'
    ) in card
    assert '<span class="badge" id="pull-request-state">open</span>' in card
    assert ">Update pull request</button>" in card
    assert "every 2s" not in card


def test_without_a_forge_the_card_points_to_the_forge_settings(browser: Any, run: Run) -> None:
    card = browser.get(f"/app/runs/{run.pk}/delivery").content.decode()

    assert "connect the project to its forge first" in card
    assert "Push branch" not in card


def test_another_users_run_card_and_deliver_are_not_found(
    run: Run, forge_set: Any, other_user: Any
) -> None:
    stranger = signed_in_client(other_user)

    assert stranger.get(f"/app/runs/{run.pk}/delivery").status_code == 404
    response = page_post(stranger, f"/app/runs/{run.pk}/deliver", {"pull_request": "1"})
    assert response.status_code == 404
    assert not RunDelivery.objects.exists()


def test_the_forge_form_saves_the_connection_and_never_shows_the_token(
    browser: Any, project: Any
) -> None:
    response = page_post(
        browser,
        f"/app/projects/{project.pk}/forge",
        {
            "kind": "gitea",
            "api_url": "https://gitea.com/api/v1",
            "repository": "acme/app",
            "token": TOKEN,
            "webhook_secret": "Wh-Val-77x",
        },
        form_page=f"/app/projects/{project.pk}",
    )

    assert (response.status_code, response["Location"]) == (
        302,
        f"/app/projects/{project.pk}#forge-title",
    )
    connection = ForgeConnection.objects.get(project=project)
    assert (connection.kind, connection.api_url, connection.secret("token").reveal()) == (
        "gitea",
        "https://gitea.com/api/v1",
        TOKEN,
    )
    page = browser.get(f"/app/projects/{project.pk}").content.decode()
    assert TOKEN not in page and "Wh-Val-77x" not in page
    assert "Token: set; webhook secret: set; SSH key: not set." in page
    assert f"/hooks/gitea/{project.pk}" in page


def test_an_empty_token_keeps_the_stored_one(browser: Any, project: Any, forge_set: Any) -> None:
    page_post(
        browser,
        f"/app/projects/{project.pk}/forge",
        {"kind": "github", "repository": "acme/other", "token": ""},
        form_page=f"/app/projects/{project.pk}",
    )

    connection = ForgeConnection.objects.get(project=project)
    assert (connection.repository, connection.secret("token").reveal()) == ("acme/other", TOKEN)


def test_a_refused_field_is_shown_next_to_it(browser: Any, project: Any) -> None:
    response = page_post(
        browser,
        f"/app/projects/{project.pk}/forge",
        {"kind": "github", "repository": "not a repository", "token": TOKEN},
        form_page=f"/app/projects/{project.pk}",
    )

    html = response.content.decode()
    assert response.status_code == 400
    assert 'aria-invalid="true" aria-describedby="forge-repository-error' in html
    assert '<p class="field-error" id="forge-repository-error">repository: give it as' not in html
    assert '<p class="field-error" id="forge-repository-error">give it as owner/name.</p>' in html
    assert TOKEN not in html
    assert not ForgeConnection.objects.exists()


def test_another_users_forge_form_is_not_found(project: Any, other_user: Any) -> None:
    stranger = signed_in_client(other_user)

    response = page_post(
        stranger,
        f"/app/projects/{project.pk}/forge",
        {"kind": "github", "repository": "evil/app", "token": "x"},
    )

    assert response.status_code == 404
    assert not ForgeConnection.objects.exists()


def test_removing_the_forge_forgets_its_secrets(browser: Any, project: Any, forge_set: Any) -> None:
    response = page_post(
        browser,
        f"/app/projects/{project.pk}/forge/remove",
        {},
        form_page=f"/app/projects/{project.pk}",
    )

    assert response.status_code == 302
    assert not ForgeConnection.objects.exists()
