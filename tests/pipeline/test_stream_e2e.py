"""SSE of real runs (a real Celery worker, the offline model): order, reconnects, the end."""

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.test import AsyncClient

from pipeline.models import Event
from tests.conftest import access_token_for

pytestmark = [pytest.mark.slow, pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

PROMPT = "A todo list manager with tags"


@pytest.fixture
def slow_model(settings: Any) -> None:
    # Model calls take a moment, so the stream is read while the run is still going.
    settings.OFFLINE_LATENCY_MS = 150
    settings.EVENTS_POLL_SECONDS = 0.05


@pytest.fixture
def auth(user: Any) -> dict[str, str]:
    return {"Authorization": f"Bearer {access_token_for(user)}"}


async def sse_events(chunks: AsyncIterator[bytes], limit: int | None = None) -> list[dict]:
    """Parse ``data:`` messages off an SSE byte stream, stopping after ``limit`` of them."""
    events: list[dict] = []
    buffer = ""
    async for chunk in chunks:
        buffer += chunk.decode()
        *blocks, buffer = buffer.split("\n\n")
        for block in blocks:
            data = [line[6:] for line in block.splitlines() if line.startswith("data: ")]
            events.extend(json.loads(item) for item in data)
        if limit is not None and len(events) >= limit:
            return events[:limit]
    return events


async def start_run(api_client: Any, project: Any) -> int:
    response = await sync_to_async(api_client.post)(
        f"/projects/{project.id}/generate", {"prompt": PROMPT}, format="json"
    )
    return response.json()["run_id"]


async def test_a_live_run_streams_every_event_in_order_across_a_reconnect(
    celery_worker: Any,
    api_client: Any,
    project: Any,
    auth: dict,
    no_sandbox: None,
    slow_model: None,
) -> None:
    run_id = await start_run(api_client, project)
    first = await AsyncClient().get(f"/runs/{run_id}/events", headers=auth)
    chunks = first.streaming_content.__aiter__()
    before = await sse_events(chunks, limit=4)
    await chunks.aclose()

    second = await AsyncClient().get(
        f"/runs/{run_id}/events", headers={**auth, "Last-Event-ID": str(before[-1]["seq"])}
    )
    after = await sse_events(second.streaming_content)

    stored = await sync_to_async(
        lambda: list(Event.objects.filter(run_id=run_id).values_list("seq", "type"))
    )()
    assert (
        [(e["seq"], e["type"]) for e in before + after],
        after[-1]["type"],
    ) == (stored, "run.completed")


async def test_a_permanently_failing_provider_ends_the_stream_with_run_failed(
    celery_worker: Any, api_client: Any, project: Any, auth: dict, script: Any, no_sandbox: None
) -> None:
    await sync_to_async(script)([{"role": "architect", "action": "error", "times": -1}])
    run_id = await start_run(api_client, project)

    response = await AsyncClient().get(f"/runs/{run_id}/events", headers=auth)
    events = await sse_events(response.streaming_content)

    assert (events[-1]["type"], [e["seq"] for e in events]) == (
        "run.failed",
        list(range(1, len(events) + 1)),
    )
