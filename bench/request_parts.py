#!/usr/bin/env python
"""Where the CPU of one API request goes: each part taken out in turn. Figures, not assertions.

Calls ``GET /projects`` and ``GET /runs/{id}`` through the real ASGI application on the data
of ``bench/request_cpu.py`` (the same database, seed and token), first whole, then with one
part replaced by a stand-in that answers what the part answered the first time, without
doing its work:

- ``rate limit``: the sliding window's Lua script on Redis (``SlidingWindowThrottle``);
- ``authentication``: the access token's signature and claims and the session row with its
  user (``SessionJWTAuthentication``);
- ``data``: the view's own work, its queries and the serialization of their rows;
- ``all three``: what is left is the frame every request pays: the ASGI handler, the
  middleware, URL resolving, DRF's dispatch and content negotiation, rendering the JSON.

A part's CPU is the whole request's less the request without it. The variants take turns,
``--rounds`` times, and each figure is the median of its rounds, so a machine whose speed
drifts (this one's does) moves all of them alike.

    .venv/bin/python bench/request_parts.py                  # both paths, 7 rounds of 500
    .venv/bin/python bench/request_parts.py --path projects --rounds 5 -n 1000
    .venv/bin/python bench/request_parts.py --root ../main    # another checkout's code
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from django.http import HttpResponse

HERE = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(HERE))

from bench import request_cpu  # noqa: E402 - the checkout's root is on the path first

PARTS = ("rate limit", "authentication", "data")


def _args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", default=str(HERE), help="checkout whose code runs")
    parser.add_argument("--path", choices=("projects", "runs", "both"), default="both")
    parser.add_argument("-n", "--requests", type=int, default=500, help="per variant and round")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--warmup", type=int, default=200, help="untimed requests first")
    parser.add_argument("--database", default="aiflow_request_cpu_bench")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/9")
    args = parser.parse_args()
    args.profile = None  # what request_cpu's set-up reads
    return args


def _remembered_authentication(original: Callable[..., Any]) -> Callable[..., Any]:
    """``authenticate`` as a stand-in: the first call runs it, later calls give its answer
    and set what the real one sets beside it."""
    answer: list[Any] = []

    def stand_in(self: Any, request: Any) -> Any:
        if not answer:
            answer.append(original(self, request))
        request.auth_session = answer[0][0]._auth_session
        return answer[0]

    return stand_in


@contextlib.contextmanager
def _without(parts: tuple[str, ...]) -> Iterator[None]:
    """The application with ``parts`` replaced by stand-ins, for the block's duration."""
    from accounts.authentication import SessionJWTAuthentication
    from accounts.throttling import SlidingWindowThrottle
    from pipeline.api.views import RunDetailApi
    from projects.api.views import ProjectListCreateApi

    swaps: list[tuple[Any, str, Any]] = []
    if "rate limit" in parts:
        swaps.append((SlidingWindowThrottle, "allow_request", lambda *_: True))
    if "authentication" in parts:
        authenticate = SessionJWTAuthentication.authenticate
        swaps.append(
            (SessionJWTAuthentication, "authenticate", _remembered_authentication(authenticate))
        )
    if "data" in parts:
        for view in (ProjectListCreateApi, RunDetailApi):
            swaps.append((view, "get", _answer_of(view.get)))
    saved = [(owner, name, owner.__dict__[name]) for owner, name, _ in swaps]
    try:
        for owner, name, replacement in swaps:
            setattr(owner, name, replacement)
        yield
    finally:
        for owner, name, original in saved:
            setattr(owner, name, original)


def _answer_of(get: Callable[..., Any]) -> Callable[..., Any]:
    """A view's ``get`` that computes its answer once and then gives it again: DRF's data,
    rendered anew each time as by the view, or a body the view wrote itself."""
    from rest_framework.response import Response

    bodies: dict[str, Any] = {}

    def stand_in(self: Any, request: Any, *args: Any, **kwargs: Any) -> Any:
        key = request.path
        if key not in bodies:
            bodies[key] = get(self, request, *args, **kwargs)
        answer = bodies[key]
        if isinstance(answer, Response):
            return Response(answer.data)
        return HttpResponse(answer.content, content_type=answer["Content-Type"])

    return stand_in


async def _cpu_ms(application: Any, path: str, token: str, requests: int) -> float:
    """CPU milliseconds per request of ``requests`` GETs of ``path`` (every one must be 200)."""
    start = time.process_time()
    for _ in range(requests):
        status, body = await request_cpu._get(application, path, token)
        if status != 200:
            raise SystemExit(f"GET {path}: {status} {body[:300]!r}")
    return (time.process_time() - start) * 1000 / requests


async def _main(application: Any, args: argparse.Namespace) -> None:
    from asgiref.sync import sync_to_async

    token, run_id = await sync_to_async(request_cpu._seed)()
    paths = {"projects": "/projects", "runs": f"/runs/{run_id}"}
    chosen = list(paths) if args.path == "both" else [args.path]
    variants: dict[str, tuple[str, tuple[str, ...]]] = {}
    for name in chosen:
        path = paths[name]
        variants[f"{path}: whole"] = (path, ())
        for part in PARTS:
            variants[f"{path}: without {part}"] = (path, (part,))
        variants[f"{path}: without all three"] = (path, PARTS)
    for path, parts in variants.values():  # warm every variant's caches
        with _without(parts):
            await _cpu_ms(application, path, token, args.warmup)
    taken: dict[str, list[float]] = {label: [] for label in variants}
    for _ in range(args.rounds):
        for label, (path, parts) in variants.items():
            with _without(parts):
                taken[label].append(await _cpu_ms(application, path, token, args.requests))
    median = {label: statistics.median(values) for label, values in taken.items()}
    print(_table(median, chosen, paths))
    print(
        f"\n{args.rounds} rounds of {args.requests} requests per variant after {args.warmup}"
        f" untimed each; medians; CPU: this process (event loop and worker thread); root"
        f" {args.root}"
    )


def _table(median: dict[str, float], chosen: list[str], paths: dict[str, str]) -> str:
    lines = [
        "request | CPU ms/request | " + " | ".join(PARTS) + " | frame (all three out)",
        "--- | --- | " + " | ".join("---" for _ in PARTS) + " | ---",
    ]
    for name in chosen:
        path = paths[name]
        whole = median[f"{path}: whole"]
        cells = [f"{whole - median[f'{path}: without {part}']:.3f}" for part in PARTS]
        frame = median[f"{path}: without all three"]
        lines.append(f"GET {path} | {whole:.3f} | " + " | ".join(cells) + f" | {frame:.3f}")
    return "\n".join(lines)


def main() -> int:
    args = _args()
    application = request_cpu._setup(args)
    asyncio.run(_main(application, args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
