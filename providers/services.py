"""The one interface to LLMs: ``complete(role=, messages=, schema=, run=)``.

LangChain loads on the first call, not with this module (see ``providers.messages``).
"""

from __future__ import annotations

import functools
import json
import re
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import pydantic
from django.conf import settings

from common.logging import get_logger

from .cache import cache_set
from .messages import message_classes
from .router import Answer, Request, advisory, chain_for, route
from .types import Completion, ProviderError, UsageLedger

if TYPE_CHECKING:
    from langchain_core.messages import BaseMessage

log = get_logger(__name__)

_FENCE = re.compile(r"^\s*```(?:json)?\s*(.*?)\s*```\s*$", re.S)


@functools.cache
def schema_text(schema: type[pydantic.BaseModel]) -> str:
    """``schema``'s JSON schema as compact JSON, built once per model class.

    Pydantic builds a JSON schema afresh on every ``model_json_schema()`` call, and a step
    asked for it twice per model call (the prompt's text and the request's dict): a tenth of
    a worker's CPU per run. The answer models are classes defined once, so the cache stays
    small; the text is immutable, so no caller can change what the next one gets.
    """
    return json.dumps(schema.model_json_schema(), separators=(",", ":"))


def schema_dict(schema: type[pydantic.BaseModel]) -> dict[str, Any]:
    """``schema``'s JSON schema as a fresh dict (the caller may change it: vendors' code)."""
    value: dict[str, Any] = json.loads(schema_text(schema))
    return value


def to_messages(messages: list[dict[str, str]] | list[BaseMessage]) -> list[BaseMessage]:
    """LangChain messages from ``[{"role": "system"|"user"|"assistant", "content": str}]``."""
    from langchain_core.messages import BaseMessage

    classes = message_classes()
    result: list[BaseMessage] = []
    for message in messages:
        if isinstance(message, BaseMessage):
            result.append(message)
            continue
        role = message.get("role", "")
        cls = classes.get(role)
        if cls is None:
            raise ProviderError(f"unknown message role {role!r}", code="invalid_request")
        result.append(cls(content=message.get("content", "")))
    return result


def _json_text(text: str) -> str:
    """The JSON inside ``text``: a bare object, or one wrapped in a code fence or prose."""
    fenced = _FENCE.match(text)
    if fenced:
        return fenced.group(1)
    start, end = text.find("{"), text.rfind("}")
    if start > 0 and end > start:
        return text[start : end + 1]
    return text


def _validate(
    schema: type[pydantic.BaseModel], text: str
) -> tuple[pydantic.BaseModel | None, str | None]:
    try:
        return schema.model_validate_json(_json_text(text)), None
    except pydantic.ValidationError as exc:
        errors = "; ".join(
            f"{'.'.join(str(p) for p in error['loc']) or '(root)'}: {error['msg']}"
            for error in exc.errors()[:20]
        )
        return None, errors


def _store(answer: Answer, completion: Completion) -> None:
    if answer.cache_key is not None and not completion.cached:
        key = answer.cache_key
        value = {
            "text": completion.text,
            "model": completion.model,
            "provider": completion.provider,
        }
        advisory("cache_set", None, lambda: cache_set(key, value))


def _combined(first: Completion, second: Completion) -> Completion:
    """The repaired answer, carrying what both calls cost."""
    return replace(
        second,
        tokens_in=first.tokens_in + second.tokens_in,
        tokens_out=first.tokens_out + second.tokens_out,
        cost_usd=first.cost_usd + second.cost_usd,
        latency_ms=first.latency_ms + second.latency_ms,
        attempts=first.attempts + second.attempts,
    )


def _ask(request: Request, entries: list[str]) -> Answer:
    """The ledger's next stored answer if it has one (nothing sent), else ``route``'s."""
    replay = getattr(request.run, "replay", None)
    stored = replay() if replay is not None else None
    if stored is not None:
        log.info(
            "provider.replayed",
            role=request.role,
            provider=stored.provider,
            model=stored.model,
            run_id=getattr(request.run, "run_id", None),
        )
        return Answer(stored, None)
    return route(request, entries)


def _ask_or_release(request: Request, entries: list[str]) -> Answer:
    """``_ask``; when no answer comes, the ledger gives back what it reserved for the call."""
    try:
        return _ask(request, entries)
    except BaseException:
        release = getattr(request.run, "release", None)
        if release is not None:
            try:
                release()
            except Exception:  # the reservation expires on its own; the call's error matters
                log.warning("provider.release_failed", exc_info=True)
        raise


def _record(run: UsageLedger | None, completion: Completion) -> None:
    """Tell the ledger of a paid answer (not of a cache hit or a replay: nothing was paid)."""
    if run is not None and not completion.cached and not completion.replayed:
        run.record_usage(completion)


def complete(
    *,
    role: str,
    messages: list[dict[str, str]] | list[BaseMessage],
    schema: type[pydantic.BaseModel] | None = None,
    run: UsageLedger | None = None,
    temperature: float | None = None,
    chain: list[str] | None = None,
    max_tokens: int | None = None,
) -> Completion:
    """Ask the first healthy model of ``role``'s chain; the answer with what it cost.

    With ``schema`` the answer is requested the vendor's native structured way, validated,
    and returned in ``parsed``; an invalid answer gets one repair attempt carrying the
    validation error, then ``ProviderError(code="schema_invalid")``. ``run`` (optional) has
    its budget checked before each call (``BudgetExceeded``, nothing sent) and is told of
    every call's usage and every failover. ``chain`` overrides the role's configured chain.
    Temperature-0 calls are answered from the Redis cache when the same request was answered
    before (``cached=True``, no cost). The returned tokens and cost include a repair call.
    """
    request = Request(
        role=role,
        messages=to_messages(messages),
        json_schema=schema_dict(schema) if schema is not None else None,
        schema_name=schema.__name__ if schema is not None else None,
        temperature=temperature,
        max_tokens=max_tokens or settings.LLM_MAX_OUTPUT_TOKENS,
        run=run,
    )
    entries = list(chain) if chain else chain_for(role)
    answer = _ask_or_release(request, entries)
    first = answer.completion
    if schema is None:
        _record(run, first)
        _store(answer, first)
        return first

    parsed, error = _validate(schema, first.text)
    if parsed is not None:
        first = replace(first, parsed=parsed)
        _record(run, first)
        _store(answer, first)
        return first
    _record(run, first)  # paid for, even though it needs a repair
    from langchain_core.messages import AIMessage, HumanMessage

    log.warning(
        "provider.schema_repair",
        role=role,
        provider=first.provider,
        model=first.model,
        schema=schema.__name__,
        error=error,
    )
    repair = replace(
        request,
        messages=[
            *request.messages,
            AIMessage(content=first.text),
            HumanMessage(
                content=(
                    f"Your answer does not match the {schema.__name__} JSON schema: {error}. "
                    "Reply again with only the corrected JSON object, valid against the schema."
                )
            ),
        ],
    )
    # The model that answered goes first, so it fixes its own answer.
    answered = f"{first.provider}:{first.model}"
    repair_chain = [answered, *[entry for entry in entries if entry != answered]]
    second = _ask_or_release(repair, repair_chain).completion
    parsed, error = _validate(schema, second.text)
    _record(run, replace(second, parsed=parsed))
    if parsed is None:
        raise ProviderError(
            f"The {role} answer from {second.provider}:{second.model} does not match the "
            f"{schema.__name__} schema after one repair attempt: {error}",
            code="schema_invalid",
        )
    result = replace(_combined(first, second), parsed=parsed)
    _store(answer, replace(result, text=json.dumps(parsed.model_dump(mode="json"))))
    return result


def provider_check(*, provider: str, model: str) -> dict[str, Any]:
    """Send a one-token request straight to ``provider:model`` (no retry, cache or circuit)."""
    import time

    from langchain_core.messages import HumanMessage

    from .errors import classify
    from .vendors import build_chat_model

    started = time.monotonic()
    try:
        chat_model = build_chat_model(
            provider=provider, model=model, temperature=None, max_tokens=1, role="check", timeout=30
        )
        message = chat_model.invoke([HumanMessage(content="Reply with the word ok.")])
    except Exception as exc:
        failure = classify(exc)
        return {
            "provider": provider,
            "model": model,
            "ok": False,
            "status": failure.status,
            "latency_ms": int((time.monotonic() - started) * 1000),
            "detail": failure.message[:200],
        }
    usage = getattr(message, "usage_metadata", None) or {}
    return {
        "provider": provider,
        "model": model,
        "ok": True,
        "status": 200,
        "latency_ms": int((time.monotonic() - started) * 1000),
        "detail": f"{usage.get('input_tokens', 0)} in / {usage.get('output_tokens', 0)} out",
    }
