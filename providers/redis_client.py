"""The Redis connection this app keeps its shared state in (circuits, cache, stats)."""

import threading
from typing import Any

import redis
from django.conf import settings

_lock = threading.Lock()
_clients: dict[str, redis.Redis] = {}

PREFIX = "aiflow:providers:"


def get_redis() -> Any:  # redis.Redis; its sync/async union types only add noise here
    """A client for ``settings.REDIS_URL`` (one connection pool per URL per process)."""
    url = settings.REDIS_URL
    client = _clients.get(url)
    if client is None:
        with _lock:
            client = _clients.get(url)
            if client is None:
                client = redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=5)
                _clients[url] = client
    return client
