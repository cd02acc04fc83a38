"""The one-trip ASGI handler: the sync chain in a pool thread that still knows its loop."""

import asyncio
import json
from typing import Any

import pytest
from asgiref.testing import ApplicationCommunicator

from config.http import OneTripASGIHandler

pytestmark = pytest.mark.urls("tests.ops.http_urls")


async def _get(handler: OneTripASGIHandler, path: str, query: bytes = b"") -> dict[str, Any]:
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": query,
        "headers": [(b"host", b"testserver")],
        "client": ("127.0.0.1", 5000),
        "server": ("testserver", 80),
    }
    communicator = ApplicationCommunicator(handler, scope)
    await communicator.send_input({"type": "http.request", "body": b"", "more_body": False})
    start = await communicator.receive_output(5)
    body = await communicator.receive_output(5)
    assert start["status"] == 200
    return json.loads(body["body"])


@pytest.mark.asyncio
async def test_async_to_sync_in_a_view_runs_on_the_servers_event_loop():
    handler = OneTripASGIHandler()
    answer = await _get(handler, "/loop")
    assert answer["loop"] == id(asyncio.get_running_loop())
    assert answer["thread"].startswith("http")


@pytest.mark.asyncio
async def test_a_context_variable_set_in_one_request_is_not_seen_by_the_next():
    handler = OneTripASGIHandler()
    first = await _get(handler, "/mark", b"set=first")
    second = await _get(handler, "/mark", b"set=second")
    assert (first["seen"], second["seen"]) == ("unset", "unset")
