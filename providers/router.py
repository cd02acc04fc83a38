"""The router: one request through a role's chain of ``provider:model``.

For each model of the chain, in order: a cache hit answers at once; a model without a price
is skipped (nothing could bound what it costs); a provider whose circuit is open is skipped,
and so is a model whose circuit this user's own bad requests opened; the call's worst case is
reserved against its user's daily budget and checked against the run's budget, atomically,
by the ledger (a call that may exceed either is not sent); transient errors are retried with
exponential backoff and jitter (a 429's Retry-After is honoured); permanent errors and
exhausted retries fail over to the next model.

Circuits, the cache and the call statistics live in Redis and only advise: when Redis cannot
be reached a circuit counts as closed, the cache as empty, and nothing is recorded, so a
Redis restart never fails a call, nor loses an answer already paid for.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from functools import partial
from typing import TYPE_CHECKING, Any, TypeVar

import redis
from django.conf import settings

from common.logging import get_logger

from . import metrics
from .cache import cache_enabled, cache_get, cache_key
from .circuit import (
    OPEN,
    CircuitState,
    circuit_allows,
    circuit_record_failure,
    circuit_record_success,
    circuit_release_probe,
    circuit_scope,
    circuit_states,
)
from .errors import CallFailure, classify
from .messages import message_dicts
from .pricing import cost_usd, price_or_none, worst_case_cost_usd
from .redis_client import get_redis
from .stats import stats_record_call
from .tracing import model_call_traced
from .types import (
    BudgetExceeded,
    Completion,
    DailyBudgetExceeded,
    ProviderError,
    Reservation,
    UnpricedModel,
    UsageLedger,
)
from .vendors import build_chat_model, invocation_for, provider_options

if TYPE_CHECKING:
    from langchain_core.messages import BaseMessage

log = get_logger(__name__)

# The router's only way to wait; tests replace it to see the delays without waiting them.
sleep = time.sleep

T = TypeVar("T")


def advisory(what: str, default: T, operation: Callable[[], T]) -> T:
    """``operation()`` on Redis, or ``default`` when Redis cannot be reached (see above)."""
    try:
        return operation()
    except (redis.RedisError, OSError) as exc:
        log.warning("provider.redis_unavailable", operation=what, error=f"{type(exc).__name__}")
        return default


def _circuits(*scopes: str) -> list[CircuitState | None]:
    """The circuits ``scopes`` in one round trip; ``None`` each when Redis cannot be reached
    (a circuit then counts as closed, and ``_allows`` tries to read it again)."""
    states = advisory("circuit_state", None, lambda: circuit_states(*scopes))
    return list(states) if states is not None else [None] * len(scopes)


def _allows(scope: str, state: CircuitState | None) -> bool:
    return advisory("circuit_allows", True, lambda: circuit_allows(scope, state))


def _release_probe(scope: str) -> None:
    advisory("circuit_release_probe", None, lambda: circuit_release_probe(scope))


def _record_stats(provider: str, model: str, latency_ms: int, *, ok: bool) -> None:
    advisory(
        "stats",
        None,
        partial(stats_record_call, provider=provider, model=model, latency_ms=latency_ms, ok=ok),
    )


def _record_success(provider: str, model: str, latency_ms: int, scopes: tuple[str, ...]) -> None:
    """A call that worked: its circuits closed and its stats noted, in one round trip."""

    def record() -> None:
        pipe = get_redis().pipeline()
        circuit_record_success(*scopes, pipe=pipe)
        stats_record_call(provider=provider, model=model, latency_ms=latency_ms, ok=True, pipe=pipe)
        pipe.execute()

    advisory("circuit_and_stats", None, record)


def split_entry(entry: str) -> tuple[str, str]:
    """``"provider:model"`` -> ``(provider, model)`` (model ids may hold colons)."""
    provider, sep, model = entry.partition(":")
    if not sep or not provider or not model:
        raise ProviderError(f"chain entry {entry!r} is not 'provider:model'", code="invalid_chain")
    return provider, model


def chain_for(role: str) -> list[str]:
    """The ordered ``provider:model`` list configured for ``role``."""
    chains = settings.LLM_CHAINS
    return list(chains.get(role) or chains.get("default") or ["offline:offline"])


@dataclass
class Request:
    """One request as the router sees it."""

    role: str
    messages: list[BaseMessage]
    json_schema: dict[str, Any] | None
    schema_name: str | None
    temperature: float | None
    max_tokens: int
    run: UsageLedger | None
    failovers: list[dict[str, Any]] = field(default_factory=list)

    @property
    def message_dicts(self) -> list[dict[str, str]]:
        return message_dicts(self.messages)

    def scopes(self, provider: str, model: str) -> tuple[str, str]:
        """The circuits a call to ``provider:model`` goes through: the provider's (every
        user) and the model's for this request's user."""
        tenant = self.run.user_id if self.run is not None else None
        return circuit_scope(provider), circuit_scope(provider, model, tenant)


@dataclass
class Answer:
    completion: Completion
    cache_key: str | None


def _backoff(attempt: int, retry_after: float | None) -> float | None:
    """Seconds to wait before attempt ``attempt + 1``, or None to give up on this model."""
    ceiling = min(
        settings.LLM_RETRY_BACKOFF_MAX_SECONDS,
        settings.LLM_RETRY_BACKOFF_SECONDS * (2 ** (attempt - 1)),
    )
    delay = ceiling / 2 + random.uniform(0, ceiling / 2)  # noqa: S311 - jitter, not crypto
    if retry_after is not None:
        if retry_after > settings.LLM_RETRY_AFTER_MAX_SECONDS:
            return None
        delay = max(delay, retry_after)
    return delay


def _worst_case(request: Request, provider: str, model: str) -> Decimal:
    texts = [str(message.text) for message in request.messages]
    if request.json_schema is not None:
        texts.append(str(request.json_schema))
    return worst_case_cost_usd(
        provider=provider, model=model, texts=texts, max_output_tokens=request.max_tokens
    )


def _daily_refusal(
    request: Request, provider: str, model: str, worst: Decimal, left: Decimal
) -> DailyBudgetExceeded:
    run = request.run
    cap = settings.LLM_USER_DAILY_BUDGET_USD
    log.warning(
        "provider.daily_budget_refused",
        role=request.role,
        provider=provider,
        model=model,
        estimate_usd=str(worst),
        left_usd=str(left),
        run_id=run.run_id if run is not None else None,
        user_id=run.user_id if run is not None else None,
    )
    return DailyBudgetExceeded(
        f"Daily budget exceeded: a {request.role} call to {provider}:{model} may cost up "
        f"to ${worst:.4f}, but the user's runs have ${max(left, Decimal(0)):.4f} left of "
        f"the ${cap} they may spend in 24 hours; the call was not sent."
    )


def _run_refusal(
    request: Request, provider: str, model: str, worst: Decimal, left: Decimal
) -> BudgetExceeded:
    log.warning(
        "provider.budget_refused",
        role=request.role,
        provider=provider,
        model=model,
        estimate_usd=str(worst),
        remaining_usd=str(left),
        run_id=request.run.run_id if request.run is not None else None,
    )
    return BudgetExceeded(
        f"Budget exceeded: a {request.role} call to {provider}:{model} may cost up to "
        f"${worst:.4f} (up to {request.max_tokens} output tokens) but the run has "
        f"${left:.4f} left; the call was not sent."
    )


def _reserve(request: Request, reserve: Any, provider: str, model: str) -> None:
    """Hold the call's worst case against the daily cap and the run's budget, or refuse it."""
    worst = _worst_case(request, provider, model)
    cap = settings.LLM_USER_DAILY_BUDGET_USD
    outcome: Reservation = reserve(
        amount_usd=worst, daily_cap_usd=Decimal(str(cap)) if cap is not None else None
    )
    if outcome.granted:
        return
    daily_left = outcome.daily_left_usd
    if daily_left is not None and worst > daily_left:
        raise _daily_refusal(request, provider, model, worst, daily_left)
    run_left = outcome.run_left_usd if outcome.run_left_usd is not None else Decimal(0)
    raise _run_refusal(request, provider, model, worst, run_left)


def _check_daily_budget(request: Request, provider: str, model: str) -> None:
    cap = settings.LLM_USER_DAILY_BUDGET_USD
    if request.run is None or cap is None:
        return
    spent = request.run.user_spent_last_day_usd()
    if spent is None:
        return
    left = Decimal(str(cap)) - Decimal(str(spent))
    worst = _worst_case(request, provider, model)
    if worst > left:
        raise _daily_refusal(request, provider, model, worst, left)


def _check_budget(request: Request, provider: str, model: str) -> None:
    """The budgets before a call: reserved when the ledger can (``reserve``), else checked."""
    if request.run is None:
        return
    reserve = getattr(request.run, "reserve", None)
    if reserve is not None:
        _reserve(request, reserve, provider, model)
        return
    _check_daily_budget(request, provider, model)
    remaining = request.run.remaining_budget_usd()
    if remaining is None:
        return
    worst = _worst_case(request, provider, model)
    remaining = Decimal(str(remaining))
    if worst > remaining:
        raise _run_refusal(request, provider, model, worst, remaining)


def _failover(request: Request, entry: str, next_entry: str | None, reason: str, **extra: Any):
    provider, model = split_entry(entry)
    if next_entry is None:  # the chain is exhausted: a failure, reported by route()
        log.warning("provider.chain_exhausted", role=request.role, last=entry, reason=reason)
        return
    info = {"role": request.role, "from": entry, "to": next_entry, "reason": reason, **extra}
    metrics.LLM_FAILOVERS.labels(provider, model, reason).inc()
    log.warning(
        "provider.failover",
        run_id=request.run.run_id if request.run is not None else None,
        **info,
    )
    request.failovers.append(info)
    if request.run is not None:
        request.run.failover(info)


def _cached(request: Request, provider: str, model: str, key: str) -> Answer | None:
    hit = advisory("cache_get", None, lambda: cache_get(key))
    if hit is None:
        return None
    metrics.LLM_CALLS.labels(provider, model, "cached").inc()
    log.info("provider.cache_hit", role=request.role, provider=provider, model=model)
    completion = Completion(
        text=hit["text"],
        parsed=None,
        tokens_in=0,
        tokens_out=0,
        cost_usd=Decimal(0),
        model=model,
        provider=provider,
        latency_ms=0,
        attempts=0,
        cached=True,
        failovers=request.failovers,
    )
    return Answer(completion, key)


@model_call_traced
def _try_model(request: Request, provider: str, model: str) -> Completion | CallFailure:
    """Ask one model, retrying transient errors; the completion or the final failure."""
    kind = provider_options(provider)["kind"]
    provider_scope, model_scope = request.scopes(provider, model)
    try:
        chat_model = build_chat_model(
            provider=provider,
            model=model,
            temperature=request.temperature,
            max_tokens=request.max_tokens,
            role=request.role,
        )
        invocation = invocation_for(
            kind=kind,
            chat_model=chat_model,
            messages=request.messages,
            role=request.role,
            schema_name=request.schema_name,
            json_schema=request.json_schema,
        )
    except Exception as exc:  # a model that cannot even be built: misconfiguration
        log.exception("provider.build_failed", provider=provider, model=model, error=str(exc))
        return CallFailure(False, None, None, f"cannot build {provider}:{model}: {exc}")

    max_attempts = settings.LLM_RETRY_MAX_ATTEMPTS
    for attempt in range(1, max_attempts + 1):
        if attempt > 1:  # the run may have spent meanwhile (its other steps run in parallel)
            _check_budget(request, provider, model)
        started = time.monotonic()
        try:
            message, text = invocation.run()
        except Exception as exc:
            latency_ms = int((time.monotonic() - started) * 1000)
            failure = classify(exc)
            kind_label = str(failure.status) if failure.status else "transport"
            metrics.LLM_CALLS.labels(provider, model, "error").inc()
            metrics.LLM_ERRORS.labels(provider, model, kind_label).inc()
            metrics.LLM_LATENCY.labels(provider, model).observe(latency_ms / 1000)
            _record_stats(provider, model, latency_ms, ok=False)
            opened = False
            if failure.caused_by_request:
                opened = advisory("circuit", False, lambda: circuit_record_failure(model_scope))
                _release_probe(provider_scope)
            elif failure.counts_against_provider:
                opened = advisory("circuit", False, lambda: circuit_record_failure(provider_scope))
                _release_probe(model_scope)
            else:
                _release_probe(provider_scope)
                _release_probe(model_scope)
            log.warning(
                "provider.call_failed",
                role=request.role,
                provider=provider,
                model=model,
                attempt=attempt,
                status=failure.status,
                transient=failure.transient,
                circuit_opened=opened,
                error=failure.message,
            )
            if not failure.transient or opened or attempt == max_attempts:
                failure.message = f"{failure.message} (after {attempt} attempt(s))"
                return failure
            delay = _backoff(attempt, failure.retry_after)
            if delay is None:
                return failure
            sleep(delay)
            continue

        latency_ms = int((time.monotonic() - started) * 1000)
        _record_success(provider, model, latency_ms, (provider_scope, model_scope))
        usage: dict[str, Any] = dict(message.usage_metadata or {})
        tokens_in = int(usage.get("input_tokens", 0))
        tokens_out = int(usage.get("output_tokens", 0))
        cost = cost_usd(provider=provider, model=model, tokens_in=tokens_in, tokens_out=tokens_out)
        metrics.LLM_CALLS.labels(provider, model, "ok").inc()
        metrics.LLM_TOKENS.labels(provider, model, "in").inc(tokens_in)
        metrics.LLM_TOKENS.labels(provider, model, "out").inc(tokens_out)
        metrics.LLM_COST.labels(provider, model).inc(float(cost))
        metrics.LLM_LATENCY.labels(provider, model).observe(latency_ms / 1000)
        completion = Completion(
            text=text,
            parsed=None,
            tokens_in=tokens_in,
            tokens_out=tokens_out,
            cost_usd=cost,
            model=model,
            provider=provider,
            latency_ms=latency_ms,
            attempts=attempt,
            failovers=request.failovers,
        )
        log.info(
            "provider.call_ok",
            role=request.role,
            provider=provider,
            model=model,
            attempts=attempt,
            usage=f"{tokens_in} in / {tokens_out} out",
            cost_usd=str(cost),
            latency_ms=latency_ms,
        )
        return completion
    raise AssertionError("unreachable")  # pragma: no cover


def route(request: Request, chain: list[str]) -> Answer:
    """The first answer any model of ``chain`` gives to ``request`` (see module docstring)."""
    if not chain:
        raise ProviderError(f"no model is configured for role {request.role!r}", code="config")
    entries = [(entry, *split_entry(entry)) for entry in chain]
    failures: list[str] = []
    unpriced = 0
    for index, (entry, provider, model) in enumerate(entries):
        next_entry = entries[index + 1][0] if index + 1 < len(entries) else None
        kind = provider_options(provider)["kind"]
        key = None
        if cache_enabled(temperature=request.temperature, kind=kind):
            key = cache_key(
                provider=provider,
                model=model,
                messages=request.message_dicts,
                json_schema=request.json_schema,
                temperature=request.temperature,
                max_tokens=request.max_tokens,
            )
            answer = _cached(request, provider, model, key)
            if answer is not None:
                return answer
        if price_or_none(provider=provider, model=model) is None:
            unpriced += 1
            failures.append(f"{entry}: no price set (LLM_PRICES or LLM_DEFAULT_PRICE)")
            _failover(request, entry, next_entry, "unpriced")
            continue
        provider_scope, model_scope = request.scopes(provider, model)
        provider_state, model_state = _circuits(provider_scope, model_scope)
        if any(
            state is not None and state.state == OPEN for state in (provider_state, model_state)
        ):
            failures.append(f"{entry}: circuit open")
            _failover(request, entry, next_entry, "circuit_open")
            continue
        _check_budget(request, provider, model)
        if not _allows(
            provider_scope, provider_state
        ):  # half-open, and another worker holds the probe
            failures.append(f"{entry}: circuit half-open, probe in flight")
            _failover(request, entry, next_entry, "circuit_open")
            continue
        if not _allows(model_scope, model_state):
            _release_probe(provider_scope)
            failures.append(f"{entry}: circuit half-open, probe in flight")
            _failover(request, entry, next_entry, "circuit_open")
            continue
        outcome = _try_model(request, provider, model)
        if isinstance(outcome, Completion):
            return Answer(outcome, key)
        failures.append(f"{entry}: {outcome.message}")
        reason = f"http_{outcome.status}" if outcome.status else "error"
        _failover(
            request,
            entry,
            next_entry,
            reason,
            status=outcome.status,
            transient=outcome.transient,
            detail=outcome.message[:300],
        )
    if unpriced == len(entries):
        raise UnpricedModel(
            f"No model of the {request.role!r} chain has a price: " + "; ".join(failures)
        )
    raise ProviderError(
        f"No model of the {request.role!r} chain answered: " + "; ".join(failures),
        code="provider_failed",
    )
