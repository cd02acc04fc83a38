"""A bare Celery app, no database: the peer the platform's canvas is compared with.

Its worker runs ``celery -A bench.peer_celery worker -Q peer`` on the bench's Redis
(``BENCH_PEER_REDIS_URL``); nothing here imports Django or the platform. ``model_call``
sleeps a call's latency and records its span in a Redis list of its run, which the bench
reads back (``spans_of``).
"""

from __future__ import annotations

import json
import os
import time
from typing import cast

import redis
from celery import Celery

REDIS_URL = os.environ.get("BENCH_PEER_REDIS_URL", "redis://127.0.0.1:6379/8")
SPANS_KEY = "bench:peer:{run}:spans"
QUEUE = "peer"

app = Celery("bench_peer", broker=REDIS_URL, backend=REDIS_URL)
app.conf.update(
    task_default_queue=QUEUE,
    # What any Celery app on Redis that cares about lost work sets; the rest is Celery's own.
    task_acks_late=True,
    worker_prefetch_multiplier=1,
    worker_hijack_root_logger=False,
    result_expires=3600,
    broker_connection_retry_on_startup=True,
    # Unbounded producer pool: with the default of 10 and 32 threads, threads that publish a
    # chord from inside a task (one producer held, a second wanted) can all wait on each
    # other, and the worker stops for good (seen here with 50 runs at once).
    broker_pool_limit=None,
)

_client: redis.Redis | None = None


def redis_client() -> redis.Redis:
    global _client
    if _client is None:
        _client = redis.Redis.from_url(REDIS_URL)
    return _client


@app.task(name="bench_peer.model_call")
def model_call(run: str, key: str, ms: int) -> None:
    """One model call of the shape: wait ``ms`` milliseconds, record the span."""
    start = time.time()
    time.sleep(ms / 1000)
    end = time.time()
    redis_client().rpush(SPANS_KEY.format(run=run), json.dumps([key, start, end]))


@app.task(name="bench_peer.layer_done")
def layer_done(run: str, layer: int) -> int:
    """The chord body of a layer: nothing to do but let the next layer start."""
    return layer


def spans_of(run: str) -> list[tuple[str, float, float]]:
    """The spans recorded so far for ``run``."""
    raw = cast(list[bytes], redis_client().lrange(SPANS_KEY.format(run=run), 0, -1))
    return [tuple(json.loads(item)) for item in raw]  # type: ignore[misc]
