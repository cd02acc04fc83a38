"""A Redis response cache for deterministic (temperature 0) calls.

The key hashes everything that shapes the answer: provider, model, messages, schema and
parameters. A hit sends nothing and costs nothing.
"""

import hashlib
import json
from typing import Any

from django.conf import settings

from .redis_client import PREFIX, get_redis


def cache_key(
    *,
    provider: str,
    model: str,
    messages: list[dict[str, str]],
    json_schema: dict[str, Any] | None,
    temperature: float | None,
    max_tokens: int,
) -> str:
    """The cache key of one request."""
    body = json.dumps(
        {
            "provider": provider,
            "model": model,
            "messages": messages,
            "schema": json_schema,
            "temperature": temperature,
            "max_tokens": max_tokens,
        },
        sort_keys=True,
        separators=(",", ":"),
    )
    return f"{PREFIX}cache:{hashlib.sha256(body.encode()).hexdigest()}"


def cache_enabled(*, temperature: float | None, kind: str) -> bool:
    """Only deterministic calls are cached; the offline model is local and free anyway
    (and tests script its answers call by call)."""
    return settings.LLM_CACHE_TTL_SECONDS > 0 and temperature == 0 and kind != "offline"


def cache_get(key: str) -> dict[str, Any] | None:
    raw = get_redis().get(key)
    return json.loads(raw) if raw else None


def cache_set(key: str, value: dict[str, Any]) -> None:
    get_redis().set(key, json.dumps(value), ex=settings.LLM_CACHE_TTL_SECONDS)
