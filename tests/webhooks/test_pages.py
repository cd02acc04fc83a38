"""The Webhooks section of the project page: add (secret shown once), list, redeliver, delete;
the owner's only."""

import re
from typing import Any

import pytest

from pipeline.events import publish
from tests.page_helpers import csrf_token_of, signed_in_client
from webhooks.models import Delivery, Endpoint
from webhooks.services import endpoint_create

from .conftest import Receiver, make_run

pytestmark = pytest.mark.django_db

HTMX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture
def browser(user: Any) -> Any:
    return signed_in_client(user)


def section_url(project: Any) -> str:
    return f"/app/projects/{project.id}/webhooks"


def post(browser: Any, project: Any, url: str, data: dict[str, Any], **extra: Any) -> Any:
    token = csrf_token_of(browser.get(f"/app/projects/{project.id}").content.decode())
    return browser.post(url, {"csrfmiddlewaretoken": token, **data}, **extra)


def test_the_project_page_loads_the_webhooks_section(browser: Any, project: Any) -> None:
    page = browser.get(f"/app/projects/{project.id}").content.decode()

    assert f'hx-get="{section_url(project)}" hx-trigger="load"' in page
    section = browser.get(section_url(project)).content.decode()
    assert '<label for="webhook-url">Endpoint URL</label>' in section
    assert re.search(
        r'<input type="checkbox" name="events" value="run.completed" checked>', section
    )
    assert "No endpoints yet." in section


def test_adding_an_endpoint_shows_its_secret_once(
    browser: Any, project: Any, receiver: Receiver, local_webhooks: Any
) -> None:
    response = post(
        browser,
        project,
        section_url(project),
        {"url": receiver.url, "events": ["run.completed", "run.failed"]},
        **HTMX,
    )

    assert response.status_code == 201
    html = response.content.decode()
    secret = re.search(r'<code class="secret" id="webhook-secret">(whsec_[^<]+)</code>', html)[1]
    endpoint = Endpoint.objects.get()
    assert (endpoint.url, endpoint.events) == (receiver.url, ["run.completed", "run.failed"])
    assert "Hears about: A run completed, A run failed." in html
    assert secret not in browser.get(section_url(project)).content.decode()
    assert secret not in browser.get(f"/app/projects/{project.id}").content.decode()


def test_a_refused_url_is_shown_next_to_the_field(browser: Any, project: Any) -> None:
    response = post(
        browser,
        project,
        section_url(project),
        {"url": "https://169.254.169.254/latest", "events": ["run.completed"]},
        **HTMX,
    )

    assert response.status_code == 400
    html = response.content.decode()
    assert 'id="webhook-url-error">169.254.169.254 is a link-local address' in html
    assert 'aria-invalid="true"' in html
    assert Endpoint.objects.count() == 0


def test_the_log_shows_each_delivery_and_redeliver_queues_it_again(
    browser: Any, project: Any, receiver: Receiver, local_webhooks: Any
) -> None:
    endpoint, _ = endpoint_create(project=project, url=receiver.url, events=["run.completed"])
    run = make_run(project, status="completed")
    publish(run_id=run.id, type="run.completed", payload={})
    delivery = Delivery.objects.get()
    Delivery.objects.filter(id=delivery.id).update(
        status="failed", attempts=3, response_code=500, error="The endpoint answered 500."
    )

    listed = browser.get(f"{section_url(project)}/list").content.decode()
    button = f'aria-label="Redeliver run.completed delivery {delivery.id}">Redeliver</button>'
    assert button in listed
    assert '<span class="badge badge-failed">Failed</span>' in listed
    assert '<td class="num">3</td>' in listed and '<td class="num">500</td>' in listed
    assert 'hx-trigger="load delay:2s"' not in listed

    again = post(
        browser,
        project,
        f"/app/webhooks/{endpoint.id}/deliveries/{delivery.id}/redeliver",
        {},
        **HTMX,
    )

    assert again.status_code == 200
    assert Delivery.objects.get().status == "pending"
    html = again.content.decode()
    assert '<span class="badge badge-pending">Pending</span>' in html
    assert 'hx-trigger="load delay:2s"' in html  # the list follows it until it is done


def test_deleting_an_endpoint_from_the_page(
    browser: Any, project: Any, receiver: Receiver, local_webhooks: Any
) -> None:
    endpoint, _ = endpoint_create(project=project, url=receiver.url, events=["run.completed"])

    response = post(browser, project, f"/app/webhooks/{endpoint.id}/delete", {}, **HTMX)

    assert response.status_code == 200
    assert Endpoint.objects.count() == 0
    assert "No endpoints yet." in response.content.decode()


def test_another_users_webhooks_are_not_found_on_the_pages(
    project: Any, other_user: Any, receiver: Receiver, local_webhooks: Any
) -> None:
    endpoint, _ = endpoint_create(project=project, url=receiver.url, events=["run.completed"])
    run = make_run(project, status="completed")
    publish(run_id=run.id, type="run.completed", payload={})
    delivery = Delivery.objects.get()
    stranger = signed_in_client(other_user)
    token = csrf_token_of(stranger.get("/").content.decode())

    answers = [
        stranger.get(section_url(project)).status_code,
        stranger.get(f"{section_url(project)}/list").status_code,
        stranger.post(
            section_url(project),
            {"csrfmiddlewaretoken": token, "url": receiver.url, "events": "run.completed"},
        ).status_code,
        stranger.post(
            f"/app/webhooks/{endpoint.id}/deliveries/{delivery.id}/redeliver",
            {"csrfmiddlewaretoken": token},
        ).status_code,
        stranger.post(
            f"/app/webhooks/{endpoint.id}/delete", {"csrfmiddlewaretoken": token}
        ).status_code,
    ]

    assert answers == [404] * 5
    assert (Endpoint.objects.count(), Delivery.objects.count()) == (1, 1)
