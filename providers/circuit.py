"""Circuit breakers, kept in Redis so every worker shares them.

A provider's circuit counts failures that say something about the provider (5xx, timeouts,
429, auth): it opens for every user. A failure caused by the request itself (a 4xx such as
400, 404 or 413) counts only in a narrower circuit, of that provider and model for the user
whose request failed, so one user's bad requests never take a provider away from the others.

Closed: calls go through. After ``LLM_CIRCUIT_FAILURE_THRESHOLD`` consecutive failures it
opens: calls skip it. After ``LLM_CIRCUIT_COOLDOWN_SECONDS`` it is half-open: one caller at a
time (a Redis lock) may probe it; a success closes it, a failure opens it again.
"""

import time
from dataclasses import dataclass
from typing import Any

from django.conf import settings

from .redis_client import PREFIX, get_redis

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half_open"


def circuit_scope(provider: str, model: str | None = None, tenant: int | None = None) -> str:
    """The circuit of ``provider`` (every user), or of one model for one user (``tenant``)."""
    if model is None:
        return provider
    return f"{provider}|{model}|{tenant if tenant is not None else '-'}"


def _key(scope: str) -> str:
    return f"{PREFIX}circuit:{scope}"


@dataclass
class CircuitState:
    state: str
    failures: int
    opened_at: float | None


def circuit_state(scope: str) -> CircuitState:
    """The circuit ``scope`` (see ``circuit_scope``) as every worker sees it."""
    return _state_of(get_redis().hgetall(_key(scope)))


def circuit_states(*scopes: str) -> list[CircuitState]:
    """The circuits ``scopes``, read in one round trip (a call goes through two of them)."""
    pipe = get_redis().pipeline(transaction=False)
    for scope in scopes:
        pipe.hgetall(_key(scope))
    return [_state_of(raw) for raw in pipe.execute()]


def _state_of(raw: dict[bytes, bytes]) -> CircuitState:
    failures = int(raw.get(b"failures", 0))
    opened = raw.get(b"opened_at")
    if opened is None:
        return CircuitState(CLOSED, failures, None)
    opened_at = float(opened)
    if time.time() - opened_at < settings.LLM_CIRCUIT_COOLDOWN_SECONDS:
        return CircuitState(OPEN, failures, opened_at)
    return CircuitState(HALF_OPEN, failures, opened_at)


def circuit_allows(scope: str, state: CircuitState | None = None) -> bool:
    """Whether a call may go through circuit ``scope`` now (claims the half-open probe).

    ``state`` is the circuit as the caller has just read it (``circuit_states``), so it is
    not read a second time; without it, it is read here.
    """
    state = state or circuit_state(scope)
    if state.state == CLOSED:
        return True
    if state.state == OPEN:
        return False
    # Half-open: only one caller probes; the lock expires should that caller die.
    hold_ms = int(max(settings.LLM_TIMEOUT_SECONDS, settings.LLM_CIRCUIT_COOLDOWN_SECONDS) * 1000)
    return bool(get_redis().set(_key(scope) + ":probe", "1", nx=True, px=max(hold_ms, 1)))


def circuit_record_success(*scopes: str, pipe: Any = None) -> None:
    """A call through ``scopes`` worked: close them (on ``pipe`` if given, for the caller to
    execute)."""
    keys = [key for scope in scopes for key in (_key(scope), _key(scope) + ":probe")]
    (pipe if pipe is not None else get_redis()).delete(*keys)


def circuit_record_failure(scope: str) -> bool:
    """A call failed in a way that counts for ``scope``; True when it is (now) open."""
    client = get_redis()
    key = _key(scope)
    failures = client.hincrby(key, "failures", 1)
    client.expire(key, 86400)
    if failures >= settings.LLM_CIRCUIT_FAILURE_THRESHOLD:
        client.hset(key, "opened_at", repr(time.time()))
        client.delete(key + ":probe")
        return True
    return False


def circuit_release_probe(scope: str) -> None:
    """The half-open probe of ``scope`` ended without a verdict on its health."""
    get_redis().delete(_key(scope) + ":probe")
