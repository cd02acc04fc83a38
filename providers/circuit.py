"""A circuit breaker per provider, kept in Redis so every worker shares it.

Closed: calls go through. After ``LLM_CIRCUIT_FAILURE_THRESHOLD`` consecutive failures it
opens: calls skip the provider. After ``LLM_CIRCUIT_COOLDOWN_SECONDS`` it is half-open: one
caller at a time (a Redis lock) may probe it; a success closes it, a failure opens it again.
"""

import time
from dataclasses import dataclass

from django.conf import settings

from .redis_client import PREFIX, get_redis

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half_open"


def _key(provider: str) -> str:
    return f"{PREFIX}circuit:{provider}"


@dataclass
class CircuitState:
    state: str
    failures: int
    opened_at: float | None


def circuit_state(provider: str) -> CircuitState:
    """The provider's circuit as every worker sees it."""
    raw = get_redis().hgetall(_key(provider))
    failures = int(raw.get(b"failures", 0))
    opened = raw.get(b"opened_at")
    if opened is None:
        return CircuitState(CLOSED, failures, None)
    opened_at = float(opened)
    if time.time() - opened_at < settings.LLM_CIRCUIT_COOLDOWN_SECONDS:
        return CircuitState(OPEN, failures, opened_at)
    return CircuitState(HALF_OPEN, failures, opened_at)


def circuit_allows(provider: str) -> bool:
    """Whether a call may go to ``provider`` now (claims the half-open probe if so)."""
    state = circuit_state(provider)
    if state.state == CLOSED:
        return True
    if state.state == OPEN:
        return False
    # Half-open: only one caller probes; the lock expires should that caller die.
    hold_ms = int(max(settings.LLM_TIMEOUT_SECONDS, settings.LLM_CIRCUIT_COOLDOWN_SECONDS) * 1000)
    return bool(get_redis().set(_key(provider) + ":probe", "1", nx=True, px=max(hold_ms, 1)))


def circuit_record_success(provider: str) -> None:
    """A call to ``provider`` worked: close its circuit."""
    get_redis().delete(_key(provider), _key(provider) + ":probe")


def circuit_record_failure(provider: str) -> bool:
    """A call to ``provider`` failed; returns True when its circuit is (now) open."""
    client = get_redis()
    key = _key(provider)
    failures = client.hincrby(key, "failures", 1)
    client.expire(key, 86400)
    if failures >= settings.LLM_CIRCUIT_FAILURE_THRESHOLD:
        client.hset(key, "opened_at", repr(time.time()))
        client.delete(key + ":probe")
        return True
    return False


def circuit_release_probe(provider: str) -> None:
    """The half-open probe ended without a verdict on the provider's health (e.g. a 400)."""
    get_redis().delete(_key(provider) + ":probe")
