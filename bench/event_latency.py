"""Event latency: from ``publish`` in a process of the platform to an SSE and a WebSocket client.

A run parked at the approval gate (nothing else publishes to it, the reaper leaves it alone)
gets ``clients`` SSE streams (``GET /runs/{id}/events``) and as many WebSockets
(``/ws/runs/{id}/``) open at once; then this process publishes events through the platform's
own ``publish`` (a row, then the Channels push on commit), each carrying the wall-clock time
taken just before the call. Every client notes when each event arrives; the latency is the
difference (one machine, one clock).

The WebSocket is admitted with a single-use ticket (``POST /runs/{id}/ws-ticket``) where the
platform has it, otherwise with the access token in the ``bearer`` subprotocol.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from typing import Any

import httpx

from .shape import percentiles


class _Collector:
    def __init__(self) -> None:
        self.latencies: dict[str, list[float]] = {"sse": [], "ws": []}
        self.received: dict[str, int] = {"sse": 0, "ws": 0}
        self.connected: dict[str, int] = {"sse": 0, "ws": 0}
        self.refused: dict[str, list[str]] = {"sse": [], "ws": []}
        self.settled = 0  # clients that subscribed or gave up
        self.lock = threading.Lock()

    def note(self, transport: str, data: dict[str, Any]) -> None:
        now = time.time()
        sent = (data.get("payload") or {}).get("bench_sent_at")
        if data.get("type") != "bench.ping" or sent is None:
            return
        with self.lock:
            self.latencies[transport].append((now - float(sent)) * 1000)
            self.received[transport] += 1


# Handshakes in flight at once: the figure is about subscribers, not a burst of handshakes.
_HANDSHAKES = 8
_ATTEMPTS = 3


async def _sse_client(
    base_url: str, token: str, run_id: int, after: int, gate: asyncio.Semaphore, out: _Collector
) -> None:
    headers = {"Authorization": f"Bearer {token}", "Accept": "text/event-stream"}
    if after:
        headers["Last-Event-ID"] = str(after)
    timeout = httpx.Timeout(30, read=None)
    async with httpx.AsyncClient(base_url=base_url, timeout=timeout) as client:
        response = None
        for _ in range(_ATTEMPTS):
            async with gate:
                try:
                    request = client.build_request("GET", f"/runs/{run_id}/events", headers=headers)
                    response = await client.send(request, stream=True)
                    response.raise_for_status()
                    lines = response.aiter_lines()
                    # The stream joins the run's group before its first line ("retry:").
                    while not (await anext(lines)).startswith("retry:"):
                        pass
                    break
                except (httpx.HTTPError, StopAsyncIteration) as exc:
                    out.refused["sse"].append(f"{type(exc).__name__}: {exc}"[:200])
                    if response is not None:
                        await response.aclose()
                    response = None
        out.settled += 1
        if response is None:
            return
        out.connected["sse"] += 1
        try:
            async for line in lines:
                if line.startswith("data:"):
                    out.note("sse", json.loads(line[5:]))
        finally:
            await response.aclose()


async def _ws_url(base_url: str, token: str, run_id: int, after: int) -> tuple[str, list[str]]:
    """Where to connect and which subprotocols to offer: a ticket, or the bearer token."""
    ws_base = base_url.replace("http://", "ws://", 1)
    async with httpx.AsyncClient(base_url=base_url, timeout=30) as client:
        response = await client.post(
            f"/runs/{run_id}/ws-ticket", headers={"Authorization": f"Bearer {token}"}
        )
    if response.status_code == 201:
        url = str(response.json()["ws_url"])
        url = url if url.startswith("ws") else f"{ws_base}{url}"
        joiner = "&" if "?" in url else "?"
        return f"{url}{joiner}last_event_id={after}", []
    return f"{ws_base}/ws/runs/{run_id}/?last_event_id={after}", ["bearer", token]


async def _ws_client(
    base_url: str, token: str, run_id: int, after: int, gate: asyncio.Semaphore, out: _Collector
) -> None:
    from websockets.asyncio.client import ClientConnection, connect
    from websockets.exceptions import WebSocketException
    from websockets.typing import Origin, Subprotocol

    socket: ClientConnection | None = None
    for _ in range(_ATTEMPTS):
        async with gate:
            try:
                url, protocols = await _ws_url(base_url, token, run_id, after)
                socket = await connect(
                    url,
                    subprotocols=[Subprotocol(p) for p in protocols] or None,
                    origin=Origin(base_url),
                    open_timeout=30,
                    max_queue=None,
                )
                break  # accepted after joining the run's group
            except (OSError, TimeoutError, WebSocketException, httpx.HTTPError) as exc:
                out.refused["ws"].append(f"{type(exc).__name__}: {exc}"[:200])
    out.settled += 1
    if socket is None:
        return
    out.connected["ws"] += 1
    try:
        async for message in socket:
            out.note("ws", json.loads(message))
    finally:
        await socket.close()


def ws_admission(base_url: str, token: str, run_id: int) -> str:
    """How this platform admits /ws/runs: "ticket" or "bearer subprotocol"."""
    url, protocols = asyncio.run(_ws_url(base_url, token, run_id, 0))
    return "bearer subprotocol (ws ticket not available yet)" if protocols else "ticket"


def measure(
    *, base_url: str, token: str, run_id: int, clients: int, events: int, interval: float
) -> dict[str, Any]:
    """Open ``clients`` SSE and WebSocket clients, publish ``events``; latency per transport."""
    from django.db import connection

    from pipeline.events import publish
    from pipeline.models import Event

    after = (
        Event.objects.filter(run_id=run_id).order_by("-seq").values_list("seq", flat=True).first()
        or 0
    )
    out = _Collector()

    def publish_all() -> None:
        try:
            for number in range(events):
                publish(
                    run_id=run_id,
                    type="bench.ping",
                    payload={"n": number, "bench_sent_at": time.time()},
                )
                time.sleep(interval)
        finally:
            connection.close()

    async def main() -> None:
        gate = asyncio.Semaphore(_HANDSHAKES)
        tasks = [
            asyncio.create_task(client(base_url, token, run_id, after, gate, out))
            for client in (_sse_client, _ws_client)
            for _ in range(clients)
        ]
        await asyncio.wait_for(_settled(), timeout=300)
        await asyncio.sleep(0.5)
        await asyncio.to_thread(publish_all)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if all(out.received[t] >= events * out.connected[t] for t in ("sse", "ws")):
                break
            await asyncio.sleep(0.1)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _settled() -> None:
        while out.settled < 2 * clients:
            await asyncio.sleep(0.05)

    asyncio.run(main())
    return {
        transport: {
            **percentiles(out.latencies[transport]),
            "clients": clients,
            "connected": out.connected[transport],
            "refused": out.refused[transport],
            "expected": events * out.connected[transport],
            "received": out.received[transport],
        }
        for transport in ("sse", "ws")
    }
