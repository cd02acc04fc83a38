"""Recent calls per provider and model, kept in Redis for ``GET /admin/providers``.

Each call is one member of a sorted set scored by its time, so every worker's calls land in
one window and old ones are trimmed as new ones arrive.
"""

import time
import uuid
from typing import Any

from django.conf import settings

from .redis_client import PREFIX, get_redis


def _key(provider: str, model: str) -> str:
    return f"{PREFIX}stats:{provider}:{model}"


def stats_record_call(
    *, provider: str, model: str, latency_ms: int, ok: bool, pipe: Any = None
) -> None:
    """Note one call that reached ``provider:model`` (on ``pipe`` if given, for the caller to
    execute with its own commands: one round trip)."""
    now = time.time()
    window = settings.LLM_STATS_WINDOW_SECONDS
    key = _key(provider, model)
    member = f"{now:.6f}|{uuid.uuid4().hex[:8]}|{int(latency_ms)}|{1 if ok else 0}"
    own = pipe is None
    if own:
        pipe = get_redis().pipeline()
    pipe.zadd(key, {member: now})
    pipe.zremrangebyscore(key, "-inf", now - window)
    pipe.expire(key, int(window) + 60)
    pipe.hincrby(f"{PREFIX}totals:{provider}:{model}", "calls", 1)
    if not ok:
        pipe.hincrby(f"{PREFIX}totals:{provider}:{model}", "errors", 1)
    if own:
        pipe.execute()


def _percentile(sorted_values: list[int], fraction: float) -> int | None:
    if not sorted_values:
        return None
    index = min(len(sorted_values) - 1, max(0, round(fraction * (len(sorted_values) - 1))))
    return sorted_values[index]


def stats_for(*, provider: str, model: str) -> dict[str, Any]:
    """Calls, errors and p50 / p95 latency (ms) of ``provider:model`` over the window."""
    now = time.time()
    client = get_redis()
    members = client.zrangebyscore(
        _key(provider, model), now - settings.LLM_STATS_WINDOW_SECONDS, "+inf"
    )
    latencies: list[int] = []
    errors = 0
    for raw in members:
        _, _, latency, ok = raw.decode().split("|")
        latencies.append(int(latency))
        errors += ok == "0"
    latencies.sort()
    totals = client.hgetall(f"{PREFIX}totals:{provider}:{model}")
    return {
        "calls": len(members),
        "errors": errors,
        "p50_ms": _percentile(latencies, 0.50),
        "p95_ms": _percentile(latencies, 0.95),
        "calls_total": int(totals.get(b"calls", 0)),
        "errors_total": int(totals.get(b"errors", 0)),
    }
