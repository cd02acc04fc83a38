"""SSE at GET /runs/{id}/events: replay after Last-Event-ID, live events, the end, the owner.

The stream is an async generator served by Django's ASGI machinery, so these tests read it
through Django's ``AsyncClient`` (the same ASGI code path daphne runs) on committed data.
"""

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.test import AsyncClient
from rest_framework.test import APIClient

from pipeline.events import publish
from pipeline.models import Run
from tests.conftest import access_token_for

pytestmark = pytest.mark.django_db(transaction=True)

TYPES = ["run.started", "stage.started", "step.started", "step.completed", "run.completed"]


@pytest.fixture
def run(project: Any) -> Run:
    return Run.objects.create(project=project, created_by=project.owner, prompt="p")


@pytest.fixture
def finished_run(run: Run) -> Run:
    for index, event_type in enumerate(TYPES):
        publish(run_id=run.pk, type=event_type, payload={"n": index})
    Run.objects.filter(pk=run.pk).update(status=Run.Status.COMPLETED)
    return run


@pytest.fixture
def auth(user: Any) -> dict[str, str]:
    return {"Authorization": f"Bearer {access_token_for(user)}"}


def parse_sse(text: str) -> list[dict[str, Any]]:
    """The data messages of an SSE body (comments and retry lines skipped)."""
    messages = []
    for block in text.split("\n\n"):
        fields: dict[str, str] = {}
        for line in block.splitlines():
            if line.startswith(":") or ":" not in line:
                continue
            name, _, value = line.partition(":")
            fields[name] = value.removeprefix(" ")
        if "data" in fields:
            messages.append(
                {"id": fields["id"], "event": fields["event"], "data": json.loads(fields["data"])}
            )
    return messages


async def read_all(response: Any) -> str:
    chunks = [chunk async for chunk in response.streaming_content]
    return b"".join(chunks).decode()


async def next_chunk(iterator: AsyncIterator[bytes]) -> str:
    return (await asyncio.wait_for(anext(iterator), timeout=20)).decode()


async def test_stream_delivers_every_event_in_seq_order(
    finished_run: Run, auth: dict[str, str]
) -> None:
    response = await AsyncClient().get(f"/runs/{finished_run.pk}/events", headers=auth)

    messages = parse_sse(await read_all(response))

    assert [(m["id"], m["event"], m["data"]["seq"]) for m in messages] == [
        (str(seq), event_type, seq) for seq, event_type in enumerate(TYPES, start=1)
    ]


async def test_each_message_carries_the_event_as_json(finished_run: Run, auth: dict) -> None:
    response = await AsyncClient().get(f"/runs/{finished_run.pk}/events", headers=auth)

    first = parse_sse(await read_all(response))[0]["data"]

    assert (sorted(first), first["type"], first["payload"]) == (
        ["at", "payload", "seq", "type"],
        "run.started",
        {"n": 0},
    )


async def test_stream_is_served_as_event_stream(finished_run: Run, auth: dict) -> None:
    response = await AsyncClient().get(f"/runs/{finished_run.pk}/events", headers=auth)
    await read_all(response)

    assert (response.status_code, response["Content-Type"], response["Cache-Control"]) == (
        200,
        "text/event-stream; charset=utf-8",
        "no-cache",
    )


async def test_reconnecting_with_last_event_id_gets_exactly_the_missed_events(
    finished_run: Run, auth: dict
) -> None:
    response = await AsyncClient().get(
        f"/runs/{finished_run.pk}/events", headers={**auth, "Last-Event-ID": "2"}
    )

    messages = parse_sse(await read_all(response))

    assert [m["data"]["seq"] for m in messages] == [3, 4, 5]


async def test_last_event_id_query_parameter_serves_eventsource_clients(
    finished_run: Run, auth: dict
) -> None:
    response = await AsyncClient().get(
        f"/runs/{finished_run.pk}/events?last_event_id=4",
        headers={**auth, "Accept": "text/event-stream"},
    )

    messages = parse_sse(await read_all(response))

    assert [m["data"]["seq"] for m in messages] == [5]


async def test_a_client_that_saw_the_final_event_gets_an_empty_stream_that_ends(
    finished_run: Run, auth: dict
) -> None:
    response = await AsyncClient().get(
        f"/runs/{finished_run.pk}/events", headers={**auth, "Last-Event-ID": "5"}
    )

    assert parse_sse(await read_all(response)) == []


async def test_events_published_while_connected_arrive_live_and_the_final_one_ends_it(
    run: Run, auth: dict
) -> None:
    await sync_to_async(publish)(run_id=run.pk, type="run.started")
    response = await AsyncClient().get(f"/runs/{run.pk}/events", headers=auth)
    chunks = response.streaming_content.__aiter__()
    received = ""
    while "run.started" not in received:
        received += await next_chunk(chunks)

    await sync_to_async(publish)(run_id=run.pk, type="step.started", payload={"role": "coder"})
    await sync_to_async(publish)(run_id=run.pk, type="run.failed", payload={"reason": "x"})
    rest = [chunk async for chunk in chunks]

    messages = parse_sse(received + b"".join(rest).decode())
    assert [(m["data"]["seq"], m["event"]) for m in messages] == [
        (1, "run.started"),
        (2, "step.started"),
        (3, "run.failed"),
    ]


async def test_heartbeat_comments_are_sent_while_nothing_happens(
    run: Run, auth: dict, settings: Any
) -> None:
    settings.EVENTS_SSE_HEARTBEAT_SECONDS = 0.2
    settings.EVENTS_POLL_SECONDS = 0.05
    response = await AsyncClient().get(f"/runs/{run.pk}/events", headers=auth)
    chunks = response.streaming_content.__aiter__()
    received = ""
    while ": heartbeat" not in received:
        received += await next_chunk(chunks)
    await chunks.aclose()

    assert parse_sse(received) == []


async def test_the_django_session_is_accepted(finished_run: Run, user: Any) -> None:
    client = AsyncClient()
    await client.aforce_login(user)

    response = await client.get(f"/runs/{finished_run.pk}/events")

    assert len(parse_sse(await read_all(response))) == len(TYPES)


def test_another_users_run_is_not_found(finished_run: Run, other_client: Any) -> None:
    response = other_client.get(f"/runs/{finished_run.pk}/events")

    assert (response.status_code, response.json()["code"]) == (404, "not_found")


def test_an_anonymous_client_is_refused(finished_run: Run, anon_client: Any) -> None:
    assert anon_client.get(f"/runs/{finished_run.pk}/events").status_code == 401


def test_a_malformed_last_event_id_is_a_bad_request(finished_run: Run, api_client: Any) -> None:
    response = api_client.get(f"/runs/{finished_run.pk}/events", HTTP_LAST_EVENT_ID="abc")

    assert (response.status_code, response.json()["code"]) == (400, "invalid")


def test_a_token_of_a_revoked_session_is_refused(finished_run: Run, user: Any) -> None:
    from accounts.services import session_revoke, session_start

    session, pair = session_start(user=user, ip="127.0.0.1", user_agent="pytest")
    session_revoke(session=session, reason="test")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {pair.access}")

    assert client.get(f"/runs/{finished_run.pk}/events").status_code == 401


def test_an_eventsource_client_of_another_user_gets_404(
    finished_run: Run, other_client: Any
) -> None:
    response = other_client.get(f"/runs/{finished_run.pk}/events", HTTP_ACCEPT="text/event-stream")

    assert (response.status_code, json.loads(response.content)["code"]) == (404, "not_found")


async def test_a_resumed_run_streams_past_its_old_failure_to_its_new_end(
    run: Run, auth: dict[str, str]
) -> None:
    story = ["run.started", "run.failed", "run.resumed", "step.completed", "run.completed"]
    for event_type in story:
        await sync_to_async(publish)(run_id=run.pk, type=event_type, payload={})
    await sync_to_async(Run.objects.filter(pk=run.pk).update)(status=Run.Status.COMPLETED)

    response = await AsyncClient().get(f"/runs/{run.pk}/events", headers=auth)

    assert [m["event"] for m in parse_sse(await read_all(response))] == story


async def test_event_streams_per_user_are_capped(run: Run, auth: dict, settings: Any) -> None:
    settings.EVENTS_STREAMS_PER_USER = 1
    first = await AsyncClient().get(f"/runs/{run.pk}/events", headers=auth)
    chunks = first.streaming_content.__aiter__()
    await next_chunk(chunks)

    second = await AsyncClient().get(f"/runs/{run.pk}/events", headers=auth)
    await chunks.aclose()

    assert (second.status_code, json.loads(second.content)["code"]) == (429, "too_many_streams")


async def hang_up(response: Any) -> None:
    """Close the stream's generator, as the server does when the client goes away."""
    await response._iterator.aclose()


async def test_an_ended_stream_gives_its_slot_back(run: Run, auth: dict, settings: Any) -> None:
    settings.EVENTS_STREAMS_PER_USER = 1
    first = await AsyncClient().get(f"/runs/{run.pk}/events", headers=auth)
    await next_chunk(first.streaming_content.__aiter__())
    await hang_up(first)

    second = await AsyncClient().get(f"/runs/{run.pk}/events", headers=auth)
    await hang_up(second)

    assert second.status_code == 200


async def test_closing_a_streams_response_gives_its_slot_back(
    run: Run, auth: dict, settings: Any
) -> None:
    """The server closes the response when the client goes away: the slot comes back then,
    before the stream's generator (under Django's wrappers) is closed or collected."""
    settings.EVENTS_STREAMS_PER_USER = 1
    first = await AsyncClient().get(f"/runs/{run.pk}/events", headers=auth)
    await next_chunk(first.streaming_content.__aiter__())
    await sync_to_async(first.close)()

    second = await AsyncClient().get(f"/runs/{run.pk}/events", headers=auth)

    assert second.status_code == 200
    await hang_up(second)
    await hang_up(first)


async def test_a_stream_cancelled_while_it_subscribes_gives_its_slot_back(
    run: Run, user: Any, settings: Any, monkeypatch: Any
) -> None:
    """A client that goes away before the first byte cancels the stream while it joins its
    groups: the slot the view took for it comes back then, not when its lease expires."""
    from pipeline.api import stream_views

    settings.EVENTS_STREAMS_PER_USER = 1
    joining = asyncio.Event()

    async def slow_subscribe(groups: list[str]) -> None:
        joining.set()
        await asyncio.sleep(30)

    monkeypatch.setattr(stream_views, "fanout_subscribe", slow_subscribe)
    lease = await sync_to_async(stream_views.events_stream_lease_acquire)(user_id=user.pk)
    stream = stream_views.event_stream(run.pk, 0, user_id=user.pk, lease=lease)
    first = asyncio.ensure_future(anext(stream))
    await asyncio.wait_for(joining.wait(), timeout=10)
    first.cancel()
    with pytest.raises(asyncio.CancelledError):
        await first

    again = await sync_to_async(stream_views.events_stream_lease_acquire)(user_id=user.pk)
    assert again


async def test_revoking_the_session_ends_its_stream(run: Run, user: Any) -> None:
    from accounts.services import session_revoke, session_start

    session, pair = await sync_to_async(session_start)(
        user=user, ip="127.0.0.1", user_agent="pytest"
    )
    response = await AsyncClient().get(
        f"/runs/{run.pk}/events", headers={"Authorization": f"Bearer {pair.access}"}
    )
    chunks = response.streaming_content.__aiter__()
    await next_chunk(chunks)

    await sync_to_async(session_revoke)(session=session, reason="logout")
    rest = [chunk.decode() async for chunk in chunks]

    assert rest[-1] == ": session revoked\n\n"


async def the_rest(chunks: AsyncIterator[bytes]) -> list[str]:
    """Every chunk still to come, until the stream ends."""
    return [chunk.decode() async for chunk in chunks]


async def dashboard_stream(run: Run, user: Any) -> tuple[AsyncClient, Any, Any]:
    """A signed-in dashboard (cookie session) following ``run``, past its first chunk."""
    client = AsyncClient()
    await client.aforce_login(user)
    response = await client.get(f"/runs/{run.pk}/events")
    chunks = response.streaming_content.__aiter__()
    await next_chunk(chunks)
    return client, response, chunks


async def test_signing_the_dashboard_out_ends_its_stream(run: Run, user: Any) -> None:
    client, response, chunks = await dashboard_stream(run, user)

    await client.post("/signout")
    rest = [chunk.decode() async for chunk in chunks]

    assert rest[-1] == ": session revoked\n\n"


async def test_deleting_the_dashboards_session_from_another_device_ends_its_stream(
    run: Run, user: Any
) -> None:
    client, response, chunks = await dashboard_stream(run, user)
    sid = await (await client.asession()).aget("accounts_page_sid")
    other = APIClient()
    other.credentials(HTTP_AUTHORIZATION=f"Bearer {await sync_to_async(access_token_for)(user)}")

    deleted = await sync_to_async(other.delete)(f"/auth/sessions/{sid}")
    rest = await asyncio.wait_for(the_rest(chunks), timeout=60)

    assert (deleted.status_code, rest[-1]) == (204, ": session revoked\n\n")


async def test_signing_everyone_out_ends_an_open_dashboard_stream(run: Run, user: Any) -> None:
    from accounts.services import user_sessions_revoke_all

    client, response, chunks = await dashboard_stream(run, user)

    await sync_to_async(user_sessions_revoke_all)(user=user, reason="password_changed")
    rest = [chunk.decode() async for chunk in chunks]

    assert rest[-1] == ": session revoked\n\n"


async def test_another_user_signed_out_everywhere_leaves_the_dashboard_stream_open(
    run: Run, user: Any, other_user: Any
) -> None:
    from accounts.services import user_sessions_revoke_all

    client, response, chunks = await dashboard_stream(run, user)

    await sync_to_async(user_sessions_revoke_all)(user=other_user, reason="password_changed")
    await sync_to_async(publish)(run_id=run.pk, type="stage.completed")
    chunk = await next_chunk(chunks)
    await hang_up(response)

    assert "stage.completed" in chunk


async def test_a_parked_run_is_read_only_at_the_start_and_on_heartbeats(
    run: Run, auth: dict, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # With a 50 ms poll setting a polling stream would read the table ~60 times in 3 s;
    # a stream that waits for pushes reads it at the start and once per 3 s heartbeat, and
    # sends a pushed event that follows the last one as it is.
    from pipeline.api import stream_views

    settings.EVENTS_POLL_SECONDS = 0.05
    settings.EVENTS_SSE_HEARTBEAT_SECONDS = 3.0
    reads: list[int] = []
    real_fetch = stream_views._fetch

    def counting_fetch(run_id: int, after_seq: int) -> Any:
        reads.append(after_seq)
        return real_fetch(run_id, after_seq)

    monkeypatch.setattr(stream_views, "_fetch", counting_fetch)
    response = await AsyncClient().get(f"/runs/{run.pk}/events", headers=auth)
    chunks = response.streaming_content.__aiter__()
    received = await next_chunk(chunks)
    while received.count(": heartbeat") < 1:
        received += await next_chunk(chunks)
    await sync_to_async(publish)(run_id=run.pk, type="run.awaiting_approval")
    while "run.awaiting_approval" not in received:
        received += await next_chunk(chunks)
    await chunks.aclose()

    assert reads == [0, 0]


async def test_a_stream_without_events_ends_cleanly_when_idle(
    run: Run, auth: dict, settings: Any
) -> None:
    settings.EVENTS_STREAM_IDLE_SECONDS = 0.5
    response = await AsyncClient().get(f"/runs/{run.pk}/events", headers=auth)

    body = await asyncio.wait_for(read_all(response), timeout=20)

    assert body.endswith(": idle; reconnect with Last-Event-ID for more\n\n")
