"""The per-process fan-out behind SSE streams and run sockets, and how they use pushes.

A pushed event that follows the last one sent goes out as it is; a duplicate is dropped; a
push that skips ahead (or arrives before an earlier one) sends the stream to the table, so
what the client sees stays gap-free and in ``seq`` order. Many streams of one run in one
process share one channel in the run's group. Pushes here are sent by hand (the rows are
stored without one) to put them in the order a test needs.
"""

import asyncio
import json
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from channels.testing import WebsocketCommunicator
from rest_framework.test import APIClient

from accounts.services import session_start
from config.asgi import application
from pipeline.api.stream_views import event_stream
from pipeline.events import (
    CHANNEL_MESSAGE_TYPE,
    event_serialize,
    publish,
    publish_many,
    run_group_name,
)
from pipeline.fanout import LOST_MESSAGE_TYPE, FanOut, Subscription, fanout_get
from pipeline.models import Event, Run

pytestmark = pytest.mark.django_db(transaction=True)

ORIGIN = "http://localhost:8001"


@pytest.fixture
def run(project: Any) -> Run:
    run = Run.objects.create(project=project, created_by=project.owner, prompt="p")
    store(run, 1, "run.started")
    return run


@pytest.fixture
def sid(user: Any) -> str:
    session, _ = session_start(user=user, ip="127.0.0.1", user_agent="pytest")
    return str(session.pk)


def store(run: Run, seq: int, kind: str = "step.started") -> dict[str, Any]:
    """Store an event without pushing it (keeping the run's counter in step); its wire form."""
    event = Event.objects.create(run=run, seq=seq, type=kind, payload={"n": seq})
    Run.objects.filter(pk=run.pk).update(next_event_seq=seq + 1)
    return event_serialize(event)


async def push(run: Run, event: dict[str, Any]) -> None:
    await get_channel_layer().group_send(
        run_group_name(run.pk), {"type": CHANNEL_MESSAGE_TYPE, "event": event}
    )


async def open_stream(run: Run, sid: str) -> Any:
    """The view's SSE generator for ``run``, already subscribed (its ``retry:`` line was read).

    Taken without the test client, whose wrappers would not pass ``aclose`` (a client going
    away) on to it.
    """
    chunks = event_stream(run.pk, 0, sid=sid)
    first = await asyncio.wait_for(anext(chunks), timeout=20)
    assert first.startswith(b"retry:")
    return chunks


async def data_until(chunks: Any, last: int) -> list[str]:
    """The ``data:`` lines the stream sends, in order, up to the event ``last``."""
    seen: list[str] = []
    while not seen or json.loads(seen[-1][5:])["seq"] < last:
        chunk = (await asyncio.wait_for(anext(chunks), timeout=20)).decode()
        seen += [line for line in chunk.split("\n") if line.startswith("data:")]
    return seen


async def seqs_until(chunks: Any, last: int) -> list[int]:
    """The seqs the stream sends, in order, up to and including ``last``."""
    return [json.loads(line[5:])["seq"] for line in await data_until(chunks, last)]


@pytest.fixture
def reads(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The ``after_seq`` of every table read an SSE stream makes."""
    from pipeline.api import stream_views

    done: list[int] = []
    real_fetch = stream_views._fetch

    def counting_fetch(run_id: int, after_seq: int) -> Any:
        done.append(after_seq)
        return real_fetch(run_id, after_seq)

    monkeypatch.setattr(stream_views, "_fetch", counting_fetch)
    return done


async def test_pushed_events_that_follow_on_are_sent_without_a_table_read(
    run: Run, sid: str, reads: list[int]
) -> None:
    chunks = await open_stream(run, sid)
    assert await seqs_until(chunks, 1) == [1]
    events = [await sync_to_async(store)(run, seq) for seq in (2, 3, 4)]

    for event in events:
        await push(run, event)
    seen = await seqs_until(chunks, 4)
    await chunks.aclose()

    assert (seen, reads) == ([2, 3, 4], [0])


async def test_events_pushed_as_one_batch_are_sent_in_order_without_a_table_read(
    run: Run, sid: str, reads: list[int]
) -> None:
    chunks = await open_stream(run, sid)
    await seqs_until(chunks, 1)

    await sync_to_async(publish_many)(
        run_id=run.pk, events=[("step.completed", {}), ("file.written", {}), ("test.result", {})]
    )
    seen = await seqs_until(chunks, 4)
    await chunks.aclose()

    assert (seen, reads) == ([2, 3, 4], [0])


async def test_a_pushed_event_goes_out_exactly_as_a_table_read_would_send_it(
    run: Run, sid: str, reads: list[int]
) -> None:
    chunks = await open_stream(run, sid)
    await seqs_until(chunks, 1)

    payload = {"role": "coder", "nested": [1, {"z": "é", "a": None}], "big": 2**40}
    await sync_to_async(publish)(run_id=run.pk, type="step.started", payload=payload)
    live = await data_until(chunks, 2)
    await chunks.aclose()
    replayed = event_stream(run.pk, 1, sid=sid)
    await anext(replayed)
    from_table = await data_until(replayed, 2)
    await replayed.aclose()

    assert (live, reads) == (from_table, [0, 1])


async def test_a_duplicated_push_is_sent_once(run: Run, sid: str) -> None:
    chunks = await open_stream(run, sid)
    await seqs_until(chunks, 1)
    second = await sync_to_async(store)(run, 2)
    third = await sync_to_async(store)(run, 3)

    for event in (second, second, third, second, third):
        await push(run, event)
    await push(run, await sync_to_async(store)(run, 4))
    seen = await seqs_until(chunks, 4)
    await chunks.aclose()

    assert seen == [2, 3, 4]


async def test_pushes_out_of_order_are_sent_in_seq_order_from_the_table(
    run: Run, sid: str, reads: list[int]
) -> None:
    chunks = await open_stream(run, sid)
    await seqs_until(chunks, 1)
    second = await sync_to_async(store)(run, 2)
    third = await sync_to_async(store)(run, 3)

    await push(run, third)
    seen = await seqs_until(chunks, 3)
    await push(run, second)  # late: already sent from the table
    await push(run, await sync_to_async(store)(run, 4))
    seen += await seqs_until(chunks, 4)
    await chunks.aclose()

    assert (seen, reads) == ([2, 3, 4], [0, 1])


async def test_a_push_that_skips_ahead_reads_the_gap_from_the_table(
    run: Run, sid: str, reads: list[int]
) -> None:
    chunks = await open_stream(run, sid)
    await seqs_until(chunks, 1)
    await sync_to_async(store)(run, 2)
    await sync_to_async(store)(run, 3)

    await push(run, await sync_to_async(store)(run, 4))  # the pushes of 2 and 3 were lost
    seen = await seqs_until(chunks, 4)
    await chunks.aclose()

    assert (seen, reads) == ([2, 3, 4], [0, 1])


async def test_word_of_a_lost_push_sends_the_stream_to_the_table(
    run: Run, sid: str, reads: list[int]
) -> None:
    chunks = await open_stream(run, sid)
    await seqs_until(chunks, 1)
    await sync_to_async(store)(run, 2)

    await get_channel_layer().group_send(run_group_name(run.pk), {"type": LOST_MESSAGE_TYPE})
    seen = await seqs_until(chunks, 2)
    await chunks.aclose()

    assert (seen, reads) == ([2], [0, 1])


async def test_a_pushed_final_event_is_confirmed_by_the_table_and_ends_the_stream(
    run: Run, sid: str, reads: list[int]
) -> None:
    chunks = await open_stream(run, sid)
    await seqs_until(chunks, 1)

    await push(run, await sync_to_async(store)(run, 2, "run.completed"))
    rest = [chunk async for chunk in chunks]

    assert ([m for c in rest for m in c.split(b"\n") if m.startswith(b"id:")], reads) == (
        [b"id: 2"],
        [0, 1],
    )


async def group_members(group: str) -> int:
    """How many channels Redis holds in the Channels group ``group``."""
    layer = get_channel_layer()
    return int(await layer.connection(0).zcard(f"{layer.prefix}:group:{group}"))


async def test_many_streams_of_a_run_in_one_process_share_one_subscription(
    run: Run, sid: str, settings: Any
) -> None:
    settings.EVENTS_STREAMS_PER_USER = 100
    group = run_group_name(run.pk)
    streams = [await open_stream(run, sid) for _ in range(20)]
    fanout = fanout_get()
    assert fanout is not None
    shared = (fanout.channels(group), fanout.subscribers(group), await group_members(group))

    await push(run, await sync_to_async(store)(run, 2))
    seen = [await seqs_until(chunks, 2) for chunks in streams]
    for chunks in streams:
        await chunks.aclose()

    assert (shared, seen, await group_members(group)) == ((1, 20, 1), [[1, 2]] * 20, 0)


def ticket_for(user: Any, run: Run) -> str:
    _, pair = session_start(user=user, ip="127.0.0.1", user_agent="pytest")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {pair.access}")
    return str(client.post(f"/runs/{run.pk}/ws-ticket").json()["ticket"])


async def open_socket(run: Run, user: Any) -> WebsocketCommunicator:
    ticket = await sync_to_async(ticket_for)(user, run)
    communicator = WebsocketCommunicator(
        application, f"/ws/runs/{run.pk}/?ticket={ticket}", headers=[(b"origin", ORIGIN.encode())]
    )
    connected, _ = await communicator.connect()
    assert connected
    return communicator


async def socket_seqs_until(communicator: WebsocketCommunicator, last: int) -> list[int]:
    seen: list[int] = []
    while not seen or seen[-1] < last:
        seen.append(json.loads(await communicator.receive_from(timeout=10))["seq"])
    return seen


async def test_sockets_and_streams_of_a_run_share_the_process_subscription(
    run: Run, user: Any, sid: str, settings: Any
) -> None:
    settings.EVENTS_STREAMS_PER_USER = 100
    group = run_group_name(run.pk)
    sockets = [await open_socket(run, user) for _ in range(3)]
    streams = [await open_stream(run, sid) for _ in range(3)]
    for communicator in sockets:
        await socket_seqs_until(communicator, 1)
    fanout = fanout_get()
    assert fanout is not None
    shared = (fanout.channels(group), fanout.subscribers(group), await group_members(group))

    await push(run, await sync_to_async(store)(run, 2))
    seen = [await socket_seqs_until(c, 2) for c in sockets]
    seen += [await seqs_until(chunks, 2) for chunks in streams]
    for communicator in sockets:
        await communicator.disconnect()
    for chunks in streams:
        await chunks.aclose()

    assert (shared, seen, fanout.channels(group)) == ((1, 6, 1), [[2]] * 3 + [[1, 2]] * 3, 0)


async def test_a_socket_sends_duplicated_and_reordered_pushes_once_in_seq_order(
    run: Run, user: Any
) -> None:
    communicator = await open_socket(run, user)
    await socket_seqs_until(communicator, 1)
    second = await sync_to_async(store)(run, 2)
    third = await sync_to_async(store)(run, 3)

    for event in (third, second, second, third):
        await push(run, event)
    seen = await socket_seqs_until(communicator, 3)
    await push(run, await sync_to_async(store)(run, 4))
    seen += await socket_seqs_until(communicator, 4)
    nothing_more = await communicator.receive_nothing(timeout=0.3)
    await communicator.disconnect()

    assert (seen, nothing_more) == ([2, 3, 4], True)


async def test_a_socket_reads_an_event_whose_push_was_lost_at_the_next_heartbeat(
    run: Run, user: Any, settings: Any
) -> None:
    settings.EVENTS_SSE_HEARTBEAT_SECONDS = 0.3
    communicator = await open_socket(run, user)
    await socket_seqs_until(communicator, 1)

    await sync_to_async(store)(run, 2)  # and no push
    seen = await socket_seqs_until(communicator, 2)
    await communicator.disconnect()

    assert seen == [2]


async def test_the_last_subscriber_to_leave_takes_the_channel_out_of_the_group(
    run: Run,
) -> None:
    group = run_group_name(run.pk)
    fanout = FanOut(get_channel_layer())
    first = await fanout.subscribe([group])
    second = await fanout.subscribe([group])
    both = (fanout.joins, await group_members(group))

    await first.close()
    one_left = await group_members(group)
    await second.close()

    assert (both, one_left, await group_members(group)) == ((1, 1), 1, 0)


async def test_a_subscriber_that_gives_up_while_joining_leaves_no_channel_behind(
    run: Run,
) -> None:
    group = run_group_name(run.pk)
    fanout = FanOut(get_channel_layer())
    subscribing = asyncio.ensure_future(fanout.subscribe([group]))
    await asyncio.sleep(0)
    joining = fanout._groups[group].joined

    subscribing.cancel()
    await asyncio.gather(subscribing, return_exceptions=True)
    await joining

    assert (fanout.joins, fanout.channels(group), await group_members(group)) == (1, 0, 0)


async def test_a_subscriber_that_falls_behind_is_told_it_lost_messages() -> None:
    subscription = Subscription(FanOut(get_channel_layer()))

    for number in range(1001):
        subscription.deliver({"type": CHANNEL_MESSAGE_TYPE, "n": number})

    assert await subscription.receive(timeout=1) == [{"type": LOST_MESSAGE_TYPE}]
