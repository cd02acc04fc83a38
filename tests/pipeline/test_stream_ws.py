"""WebSocket /ws/runs/<id>/: JWT (query or subprotocol) or session, owner only, backlog + live."""

import json
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.test import Client

from config.asgi import application
from pipeline.events import publish
from pipeline.models import Run
from tests.conftest import access_token_for

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def run(project: Any) -> Run:
    run = Run.objects.create(project=project, created_by=project.owner, prompt="p")
    publish(run_id=run.pk, type="run.started")
    publish(run_id=run.pk, type="stage.started", payload={"stage": "design"})
    return run


@pytest.fixture
def token(user: Any) -> str:
    return access_token_for(user)


async def receive_event(communicator: WebsocketCommunicator) -> dict[str, Any]:
    return json.loads(await communicator.receive_from(timeout=10))


async def test_the_backlog_is_sent_on_connect(run: Run, token: str) -> None:
    communicator = WebsocketCommunicator(application, f"/ws/runs/{run.pk}/?token={token}")
    connected, _ = await communicator.connect()

    events = [await receive_event(communicator), await receive_event(communicator)]
    await communicator.disconnect()

    assert (connected, [(e["seq"], e["type"]) for e in events]) == (
        True,
        [(1, "run.started"), (2, "stage.started")],
    )


async def test_live_events_follow_the_backlog_and_the_final_one_closes_the_socket(
    run: Run, token: str
) -> None:
    communicator = WebsocketCommunicator(application, f"/ws/runs/{run.pk}/?token={token}")
    await communicator.connect()
    backlog = [await receive_event(communicator), await receive_event(communicator)]

    await sync_to_async(publish)(run_id=run.pk, type="step.started", payload={"role": "coder"})
    await sync_to_async(publish)(run_id=run.pk, type="run.completed")
    live = [await receive_event(communicator), await receive_event(communicator)]
    closed = await communicator.receive_output(timeout=10)

    assert (
        [e["seq"] for e in backlog + live],
        live[0]["payload"],
        closed,
    ) == ([1, 2, 3, 4], {"role": "coder"}, {"type": "websocket.close", "code": 1000})


async def test_last_event_id_skips_what_the_client_already_saw(run: Run, token: str) -> None:
    communicator = WebsocketCommunicator(
        application, f"/ws/runs/{run.pk}/?token={token}&last_event_id=1"
    )
    await communicator.connect()

    event = await receive_event(communicator)
    nothing_else = await communicator.receive_nothing(timeout=0.3)
    await communicator.disconnect()

    assert (event["seq"], nothing_else) == (2, True)


async def test_the_token_may_come_in_the_websocket_subprotocol(run: Run, token: str) -> None:
    communicator = WebsocketCommunicator(
        application, f"/ws/runs/{run.pk}/", subprotocols=["bearer", token]
    )
    connected, subprotocol = await communicator.connect()
    event = await receive_event(communicator)
    await communicator.disconnect()

    assert (connected, subprotocol, event["seq"]) == (True, "bearer", 1)


async def test_the_django_session_is_accepted(run: Run, user: Any) -> None:
    client = Client()
    await sync_to_async(client.force_login)(user)
    cookie = f"{settings.SESSION_COOKIE_NAME}={client.cookies[settings.SESSION_COOKIE_NAME].value}"
    communicator = WebsocketCommunicator(
        application, f"/ws/runs/{run.pk}/", headers=[(b"cookie", cookie.encode())]
    )

    connected, _ = await communicator.connect()
    event = await receive_event(communicator)
    await communicator.disconnect()

    assert (connected, event["seq"]) == (True, 1)


async def test_another_users_token_is_refused(run: Run, other_user: Any) -> None:
    other_token = await sync_to_async(access_token_for)(other_user)
    communicator = WebsocketCommunicator(application, f"/ws/runs/{run.pk}/?token={other_token}")

    connected, _ = await communicator.connect()

    assert connected is False


async def test_an_unknown_run_is_refused(run: Run, token: str) -> None:
    communicator = WebsocketCommunicator(application, f"/ws/runs/{run.pk + 1000}/?token={token}")

    connected, _ = await communicator.connect()

    assert connected is False


async def test_no_credentials_are_refused(run: Run) -> None:
    communicator = WebsocketCommunicator(application, f"/ws/runs/{run.pk}/")

    connected, _ = await communicator.connect()

    assert connected is False


async def test_a_forged_token_is_refused(run: Run, token: str) -> None:
    communicator = WebsocketCommunicator(application, f"/ws/runs/{run.pk}/?token={token}x")

    connected, _ = await communicator.connect()

    assert connected is False


async def test_a_token_of_a_revoked_session_is_refused(run: Run, user: Any) -> None:
    from accounts.services import session_revoke, session_start

    def revoked_token() -> str:
        session, pair = session_start(user=user, ip="127.0.0.1", user_agent="pytest")
        session_revoke(session=session, reason="test")
        return pair.access

    token = await sync_to_async(revoked_token)()
    communicator = WebsocketCommunicator(application, f"/ws/runs/{run.pk}/?token={token}")

    connected, _ = await communicator.connect()

    assert connected is False
