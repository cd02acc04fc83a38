"""WebSocket /ws/runs/<id>/: an allowed Origin and a single-use ticket from
POST /runs/{id}/ws-ticket, owner only, backlog + live, closed when its session is revoked."""

import json
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.test import Client
from rest_framework.test import APIClient

from accounts.models import UserSession
from accounts.services import session_start
from config.asgi import application
from pipeline.events import publish
from pipeline.models import Run
from tests.conftest import access_token_for
from tests.page_helpers import csrf_token_of, page_post, signed_in_client

pytestmark = pytest.mark.django_db(transaction=True)

ORIGIN = "http://localhost:8001"


@pytest.fixture
def run(project: Any) -> Run:
    run = Run.objects.create(project=project, created_by=project.owner, prompt="p")
    publish(run_id=run.pk, type="run.started")
    publish(run_id=run.pk, type="stage.started", payload={"stage": "design"})
    return run


def signed_in(user: Any) -> tuple[APIClient, str]:
    """An API client on a fresh device session of ``user``, and that session's id."""
    session, pair = session_start(user=user, ip="127.0.0.1", user_agent="pytest")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {pair.access}")
    return client, str(session.pk)


def ticket_for(client: APIClient, run_id: int) -> str:
    response = client.post(f"/runs/{run_id}/ws-ticket")
    assert response.status_code == 201
    return str(response.json()["ticket"])


@pytest.fixture
def ticket(user: Any, run: Run) -> str:
    client, _ = signed_in(user)
    return ticket_for(client, run.pk)


def socket(path: str, origin: str | None = ORIGIN, host: str | None = None) -> Any:
    headers = [(b"origin", origin.encode())] if origin is not None else []
    if host is not None:
        headers.append((b"host", host.encode()))
    return WebsocketCommunicator(application, path, headers=headers)


async def receive_event(communicator: WebsocketCommunicator) -> dict[str, Any]:
    return json.loads(await communicator.receive_from(timeout=10))


async def closed_with(communicator: WebsocketCommunicator) -> int | None:
    """The close code the server sent (after any frames still queued)."""
    while True:
        frame = await communicator.receive_output(timeout=15)
        if frame["type"] == "websocket.close":
            return frame.get("code")


def test_the_owner_gets_a_ticket_and_the_socket_url(api_client: Any, run: Run) -> None:
    response = api_client.post(f"/runs/{run.pk}/ws-ticket")

    body = response.json()
    assert response.status_code == 201
    assert body["ws_url"] == f"ws://testserver/ws/runs/{run.pk}/?ticket={body['ticket']}"


def test_another_users_run_gets_no_ticket(other_client: Any, run: Run) -> None:
    response = other_client.post(f"/runs/{run.pk}/ws-ticket")

    assert (response.status_code, response.json()["code"]) == (404, "not_found")


def test_an_anonymous_client_gets_no_ticket(anon_client: Any, run: Run) -> None:
    assert anon_client.post(f"/runs/{run.pk}/ws-ticket").status_code == 401


async def test_a_ticket_streams_the_backlog_in_seq_order(run: Run, ticket: str) -> None:
    communicator = socket(f"/ws/runs/{run.pk}/?ticket={ticket}")

    connected, _ = await communicator.connect()
    events = [await receive_event(communicator), await receive_event(communicator)]
    await communicator.disconnect()

    assert connected is True
    assert [(e["seq"], e["type"]) for e in events] == [(1, "run.started"), (2, "stage.started")]


async def test_live_events_arrive_and_the_final_one_closes_the_socket(
    run: Run, ticket: str
) -> None:
    communicator = socket(f"/ws/runs/{run.pk}/?ticket={ticket}")
    await communicator.connect()
    await receive_event(communicator)
    await receive_event(communicator)

    await sync_to_async(publish)(run_id=run.pk, type="run.completed")
    final = await receive_event(communicator)
    code = await closed_with(communicator)

    assert ((final["seq"], final["type"]), code) == ((3, "run.completed"), 1000)


async def test_last_event_id_skips_what_was_seen(run: Run, ticket: str) -> None:
    communicator = socket(f"/ws/runs/{run.pk}/?ticket={ticket}&last_event_id=1")

    await communicator.connect()
    event = await receive_event(communicator)
    await communicator.disconnect()

    assert event["seq"] == 2


async def test_a_used_ticket_is_refused(run: Run, ticket: str) -> None:
    first = socket(f"/ws/runs/{run.pk}/?ticket={ticket}")
    await first.connect()
    await first.disconnect()

    connected, code = await socket(f"/ws/runs/{run.pk}/?ticket={ticket}").connect()

    assert (connected, code) == (False, 4401)


async def test_a_ticket_for_another_run_is_refused(run: Run, project: Any, user: Any) -> None:
    def other_run_ticket() -> str:
        other = Run.objects.create(project=project, created_by=user, prompt="q")
        return ticket_for(signed_in(user)[0], other.pk)

    ticket = await sync_to_async(other_run_ticket)()

    connected, code = await socket(f"/ws/runs/{run.pk}/?ticket={ticket}").connect()

    assert (connected, code) == (False, 4401)


async def test_an_access_token_in_the_query_string_is_refused(run: Run, user: Any) -> None:
    token = await sync_to_async(access_token_for)(user)

    connected, code = await socket(f"/ws/runs/{run.pk}/?token={token}").connect()

    assert (connected, code) == (False, 4401)


async def test_a_session_cookie_alone_is_refused(run: Run, user: Any) -> None:
    client = Client()
    await sync_to_async(client.force_login)(user)
    cookie = f"{settings.SESSION_COOKIE_NAME}={client.cookies[settings.SESSION_COOKIE_NAME].value}"
    communicator = WebsocketCommunicator(
        application,
        f"/ws/runs/{run.pk}/",
        headers=[(b"cookie", cookie.encode()), (b"origin", ORIGIN.encode())],
    )

    connected, code = await communicator.connect()

    assert (connected, code) == (False, 4401)


async def test_a_foreign_origin_is_refused(run: Run, ticket: str) -> None:
    communicator = socket(f"/ws/runs/{run.pk}/?ticket={ticket}", origin="https://evil.example")

    connected, code = await communicator.connect()

    assert (connected, code) == (False, 4403)


async def test_a_missing_origin_is_refused(run: Run, ticket: str) -> None:
    connected, code = await socket(f"/ws/runs/{run.pk}/?ticket={ticket}", origin=None).connect()

    assert (connected, code) == (False, 4403)


async def test_a_sibling_subdomain_origin_is_refused(run: Run, ticket: str, settings: Any) -> None:
    settings.ALLOWED_HOSTS = [".example.com"]
    communicator = socket(
        f"/ws/runs/{run.pk}/?ticket={ticket}",
        origin="https://evil.example.com",
        host="app.example.com",
    )

    connected, code = await communicator.connect()

    assert (connected, code) == (False, 4403)


async def test_the_origin_of_the_host_itself_is_admitted(
    run: Run, ticket: str, settings: Any
) -> None:
    settings.ALLOWED_HOSTS = [".example.com"]
    communicator = socket(
        f"/ws/runs/{run.pk}/?ticket={ticket}",
        origin="https://app.example.com",
        host="app.example.com",
    )

    connected, _ = await communicator.connect()
    await communicator.disconnect()

    assert connected is True


async def test_another_user_holding_the_ticket_of_a_deleted_run_is_not_found(
    run: Run, ticket: str
) -> None:
    run_id = run.pk
    await sync_to_async(Run.objects.filter(pk=run_id).delete)()

    connected, code = await socket(f"/ws/runs/{run_id}/?ticket={ticket}").connect()

    assert (connected, code) == (False, 4404)


async def test_revoking_the_session_closes_its_socket(run: Run, user: Any) -> None:
    client, sid = await sync_to_async(signed_in)(user)
    ticket = await sync_to_async(ticket_for)(client, run.pk)
    communicator = socket(f"/ws/runs/{run.pk}/?ticket={ticket}")
    await communicator.connect()
    await receive_event(communicator)
    await receive_event(communicator)

    response = await sync_to_async(client.delete)(f"/auth/sessions/{sid}")
    code = await closed_with(communicator)

    assert (response.status_code, code) == (204, 4401)


def dashboard_ticket(user: Any, run_id: int) -> tuple[Client, str, str]:
    """A browser signed in through the form, the run-socket ticket it asks for (its cookie
    and CSRF token), and the id of its device session."""
    browser = signed_in_client(user)
    token = csrf_token_of(browser.get("/account").content.decode())
    response = browser.post(f"/runs/{run_id}/ws-ticket", HTTP_X_CSRFTOKEN=token)
    assert response.status_code == 201, response.content
    return browser, str(response.json()["ticket"]), str(browser.session["accounts_page_sid"])


async def test_signing_the_dashboard_out_elsewhere_closes_the_socket_its_ticket_opened(
    run: Run, user: Any
) -> None:
    _, ticket, sid = await sync_to_async(dashboard_ticket)(user, run.pk)
    communicator = socket(f"/ws/runs/{run.pk}/?ticket={ticket}")
    await communicator.connect()
    await receive_event(communicator)
    other, _ = await sync_to_async(signed_in)(user)

    response = await sync_to_async(other.delete)(f"/auth/sessions/{sid}")
    code = await closed_with(communicator)

    assert (response.status_code, code) == (204, 4401)


async def test_a_dashboard_ticket_is_refused_once_the_browser_signed_out(
    run: Run, user: Any
) -> None:
    browser, ticket, _ = await sync_to_async(dashboard_ticket)(user, run.pk)
    await sync_to_async(page_post)(browser, "/signout", {}, form_page="/account")

    connected, code = await socket(f"/ws/runs/{run.pk}/?ticket={ticket}").connect()

    assert (connected, code) == (False, 4401)


async def test_revoking_another_session_leaves_the_socket_open(run: Run, user: Any) -> None:
    client, _ = await sync_to_async(signed_in)(user)
    other_client, other_sid = await sync_to_async(signed_in)(user)
    ticket = await sync_to_async(ticket_for)(client, run.pk)
    communicator = socket(f"/ws/runs/{run.pk}/?ticket={ticket}")
    await communicator.connect()
    await receive_event(communicator)
    await receive_event(communicator)

    await sync_to_async(other_client.delete)(f"/auth/sessions/{other_sid}")
    await sync_to_async(publish)(run_id=run.pk, type="stage.completed")
    event = await receive_event(communicator)
    await communicator.disconnect()

    assert event["seq"] == 3


async def test_a_socket_whose_session_was_revoked_before_it_opened_is_refused(
    run: Run, user: Any
) -> None:
    client, sid = await sync_to_async(signed_in)(user)
    ticket = await sync_to_async(ticket_for)(client, run.pk)
    await sync_to_async(UserSession.objects.filter(pk=sid).update)(revoked_at="2026-01-01T00:00Z")

    connected, code = await socket(f"/ws/runs/{run.pk}/?ticket={ticket}").connect()

    assert (connected, code) == (False, 4401)


async def test_event_streams_per_user_are_capped(run: Run, user: Any, settings: Any) -> None:
    settings.EVENTS_STREAMS_PER_USER = 1
    client, _ = await sync_to_async(signed_in)(user)
    first = socket(f"/ws/runs/{run.pk}/?ticket={await sync_to_async(ticket_for)(client, run.pk)}")
    await first.connect()

    second = socket(f"/ws/runs/{run.pk}/?ticket={await sync_to_async(ticket_for)(client, run.pk)}")
    connected, code = await second.connect()
    await first.disconnect()

    assert (connected, code) == (False, 4429)


async def test_a_closed_socket_gives_its_slot_back(run: Run, user: Any, settings: Any) -> None:
    settings.EVENTS_STREAMS_PER_USER = 1
    client, _ = await sync_to_async(signed_in)(user)
    first = socket(f"/ws/runs/{run.pk}/?ticket={await sync_to_async(ticket_for)(client, run.pk)}")
    await first.connect()
    await first.disconnect()

    second = socket(f"/ws/runs/{run.pk}/?ticket={await sync_to_async(ticket_for)(client, run.pk)}")
    connected, _ = await second.connect()
    await second.disconnect()

    assert connected is True
