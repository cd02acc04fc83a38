"""The span of one model call, named and described as the OpenTelemetry GenAI semantic
conventions say (``chat <model>``, a client span): provider, requested and answering model,
tokens in and out, and the cost (the proposed ``gen_ai.usage.cost.*`` attributes). A failed
call's span is marked as an error with its HTTP status (the vendor's text stays out: it may
quote the request or an account). A plain call when tracing is off."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

from common.tracing import span, span_error, tracing_enabled

from .types import Completion

F = TypeVar("F", bound=Callable[..., Any])


def model_call_traced(function: F) -> F:
    """Wrap ``_try_model(request, provider, model)`` in its span."""

    @wraps(function)
    def wrapper(request: Any, provider: str, model: str) -> Any:
        if not tracing_enabled():
            return function(request, provider, model)
        attributes = {
            "gen_ai.operation.name": "chat",
            "gen_ai.provider.name": provider,
            "gen_ai.request.model": model,
            "gen_ai.request.max_tokens": request.max_tokens,
            "gen_ai.request.temperature": request.temperature,
            "aiflow.llm.role": request.role,
        }
        with span(f"chat {model}", kind="client", attributes=attributes) as current:
            outcome = function(request, provider, model)
            if isinstance(outcome, Completion):
                current.set_attributes(
                    {
                        "gen_ai.response.model": outcome.model,
                        "gen_ai.usage.input_tokens": outcome.tokens_in,
                        "gen_ai.usage.output_tokens": outcome.tokens_out,
                        "gen_ai.usage.cost.amount": float(outcome.cost_usd),
                        "gen_ai.usage.cost.currency": "USD",
                        "gen_ai.usage.cost.source": "local",
                        "aiflow.llm.attempts": outcome.attempts,
                        "aiflow.llm.latency_ms": outcome.latency_ms,
                    }
                )
            else:
                kind = str(outcome.status) if outcome.status else "transport"
                span_error(current, f"the model call failed ({kind})", error_type=kind)
            return outcome

    return wrapper  # type: ignore[return-value]
