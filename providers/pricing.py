"""Prices (USD per million input / output tokens) and what a call costs or may cost.

A model without a price (in ``LLM_PRICES``, the built-in table, or ``LLM_DEFAULT_PRICE``
when the operator sets one) is never called: it would cost an unknown amount that no
budget could bound.
"""

import math
from decimal import Decimal

from django.conf import settings

from .types import UnpricedModel

MILLION = Decimal(1_000_000)

# Public list prices; LLM_PRICES overrides or extends them. Keys are a model id or
# "provider:model" (the latter wins, e.g. for an Azure deployment name).
BUILTIN_PRICES: dict[str, tuple[str, str]] = {
    "offline": ("0", "0"),
    # OpenAI (direct, Azure, and OpenRouter's "openai/..." ids)
    "gpt-4o": ("2.50", "10.00"),
    "gpt-4o-mini": ("0.15", "0.60"),
    "gpt-4.1": ("2.00", "8.00"),
    "gpt-4.1-mini": ("0.40", "1.60"),
    "gpt-4.1-nano": ("0.10", "0.40"),
    "o4-mini": ("1.10", "4.40"),
    # Anthropic (direct, and OpenRouter's "anthropic/..." ids)
    "claude-opus-4-1": ("15.00", "75.00"),
    "claude-opus-4-5": ("5.00", "25.00"),
    "claude-sonnet-4-6": ("3.00", "15.00"),
    "claude-sonnet-4-5": ("3.00", "15.00"),
    "claude-sonnet-4": ("3.00", "15.00"),
    "claude-haiku-4-5": ("1.00", "5.00"),
    "claude-3-5-haiku-latest": ("0.80", "4.00"),
    # Bedrock
    "anthropic.claude-3-5-sonnet-20240620-v1:0": ("3.00", "15.00"),
    "anthropic.claude-3-5-sonnet-20241022-v2:0": ("3.00", "15.00"),
    "anthropic.claude-3-haiku-20240307-v1:0": ("0.25", "1.25"),
    "anthropic.claude-sonnet-4-20250514-v1:0": ("3.00", "15.00"),
    "amazon.titan-text-express-v1": ("0.20", "0.60"),
    "amazon.titan-text-lite-v1": ("0.15", "0.20"),
    "amazon.titan-text-premier-v1:0": ("0.50", "1.50"),
    # Vertex AI Gemini
    "gemini-2.5-pro": ("1.25", "10.00"),
    "gemini-2.5-flash": ("0.30", "2.50"),
    "gemini-2.0-flash": ("0.10", "0.40"),
}


def _candidates(provider: str, model: str) -> list[str]:
    names = [f"{provider}:{model}", model]
    if "/" in model:  # OpenRouter: "openai/gpt-4o-mini"
        names.append(model.split("/", 1)[1])
    head, _, rest = model.partition(".")
    if head in ("us", "eu", "apac", "global") and rest:  # Bedrock inference profiles
        names.append(rest)
    return names


def price_or_none(*, provider: str, model: str) -> tuple[Decimal, Decimal] | None:
    """USD per million (input, output) tokens of ``provider:model``; None when unpriced."""
    if provider == "offline":
        return Decimal(0), Decimal(0)
    for table in (settings.LLM_PRICES, BUILTIN_PRICES):
        for name in _candidates(provider, model):
            if name in table:
                price_in, price_out = table[name]
                return Decimal(str(price_in)), Decimal(str(price_out))
    if settings.LLM_DEFAULT_PRICE:
        price_in, price_out = settings.LLM_DEFAULT_PRICE
        return Decimal(str(price_in)), Decimal(str(price_out))
    return None


def price_for(*, provider: str, model: str) -> tuple[Decimal, Decimal]:
    """USD per million (input, output) tokens of ``provider:model``; ``UnpricedModel``."""
    price = price_or_none(provider=provider, model=model)
    if price is None:
        raise UnpricedModel(
            f"{provider}:{model} has no price: the operator must set one (LLM_PRICES or "
            "LLM_DEFAULT_PRICE) before it may be called."
        )
    return price


def cost_usd(*, provider: str, model: str, tokens_in: int, tokens_out: int) -> Decimal:
    """What ``tokens_in`` + ``tokens_out`` cost on ``provider:model``."""
    price_in, price_out = price_for(provider=provider, model=model)
    return (tokens_in * price_in + tokens_out * price_out) / MILLION


def estimate_input_tokens(texts: list[str]) -> int:
    """A deliberately high estimate of the prompt's tokens (no tokenizer download needed).

    English and code average ~4 characters a token; counting one per 3 characters plus a
    per-message overhead errs on the side of refusing a call rather than overspending.
    """
    return sum(math.ceil(len(text) / 3) + 4 for text in texts)


def worst_case_cost_usd(
    *, provider: str, model: str, texts: list[str], max_output_tokens: int
) -> Decimal:
    """The most a call may cost: estimated input plus the full output allowance."""
    return cost_usd(
        provider=provider,
        model=model,
        tokens_in=estimate_input_tokens(texts),
        tokens_out=max_output_tokens,
    )
