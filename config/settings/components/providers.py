"""Settings of the providers part of the platform, read from the environment.

Which LLM providers exist (and their credentials), the ordered ``provider:model`` chain each
agent role tries, price overrides, and the router's retry / circuit / cache knobs.

A provider is configured when its credentials are present (or when ``LLM_PROVIDERS`` names
it). The ``offline`` provider (a deterministic local model) is always available and is the
default chain only when no other provider is configured.
"""

import json
from decimal import Decimal, InvalidOperation
from typing import Any

from django.core.exceptions import ImproperlyConfigured

from ..env import env

PROVIDERS_BEAT_SCHEDULE: dict = {}

LLM_ROLES = ("architect", "planner", "orchestrator", "coder", "tester", "integrator")

# --- Vendors --------------------------------------------------------------------------------
# OpenRouter API key (enables the openrouter provider).
OPENROUTER_API_KEY = env.str("OPENROUTER_API_KEY", default="")
# OpenRouter's OpenAI-compatible API base URL.
OPENROUTER_BASE_URL = env.str("OPENROUTER_BASE_URL", default="https://openrouter.ai/api/v1")
# Model of the openrouter provider in the default chain.
OPENROUTER_MODEL = env.str("OPENROUTER_MODEL", default="openai/gpt-4o-mini")

# Base URL of an OpenAI-compatible server (Ollama, vLLM, llama.cpp; enables "openai").
OPENAI_COMPAT_BASE_URL = env.str("OPENAI_COMPAT_BASE_URL", default="")
# API key of the OpenAI-compatible server (local servers accept any).
OPENAI_COMPAT_API_KEY = env.str("OPENAI_COMPAT_API_KEY", default="")
# Model of the openai provider in the default chain.
OPENAI_COMPAT_MODEL = env.str("OPENAI_COMPAT_MODEL", default="gpt-4o-mini")

# Azure OpenAI API key (with the endpoint, enables the azure provider).
AZURE_OPENAI_API_KEY = env.str("AZURE_OPENAI_API_KEY", default="")
# Azure OpenAI resource endpoint (https://NAME.openai.azure.com).
AZURE_OPENAI_ENDPOINT = env.str("AZURE_OPENAI_ENDPOINT", default="")
# Azure deployment name used as the azure provider's model in the default chain.
AZURE_OPENAI_DEPLOYMENT = env.str("AZURE_OPENAI_DEPLOYMENT", default="")
# Azure OpenAI API version.
AZURE_OPENAI_API_VERSION = env.str("AZURE_OPENAI_API_VERSION", default="2024-10-21")

# Anthropic API key (enables the anthropic provider).
ANTHROPIC_API_KEY = env.str("ANTHROPIC_API_KEY", default="")
# Anthropic API base URL (empty: Anthropic's own).
ANTHROPIC_BASE_URL = env.str("ANTHROPIC_BASE_URL", default="")
# Model of the anthropic provider in the default chain.
ANTHROPIC_MODEL = env.str("ANTHROPIC_MODEL", default="claude-sonnet-4-6")

# Bedrock authenticates through boto3's standard credential chain (environment, shared
# files, instance or task role); only the region and an optional endpoint are read here.

# Enables the bedrock provider (Amazon Bedrock's Converse API).
BEDROCK_ENABLED = env.bool("BEDROCK_ENABLED", default=False)
# AWS region of Bedrock (empty: boto3's default).
AWS_REGION = env.str("AWS_REGION", default="")
# Bedrock runtime endpoint URL (empty: AWS's for the region).
BEDROCK_ENDPOINT_URL = env.str("BEDROCK_ENDPOINT_URL", default="")
# Model of the bedrock provider in the default chain.
BEDROCK_MODEL = env.str("BEDROCK_MODEL", default="anthropic.claude-3-5-sonnet-20240620-v1:0")

# Google Cloud project of Vertex AI (enables the vertex provider).
VERTEX_PROJECT = env.str("VERTEX_PROJECT", default="")
# Vertex AI location.
VERTEX_LOCATION = env.str("VERTEX_LOCATION", default="us-central1")
# Vertex AI API base URL (empty: Google's).
VERTEX_BASE_URL = env.str("VERTEX_BASE_URL", default="")
# Model of the vertex provider in the default chain.
VERTEX_MODEL = env.str("VERTEX_MODEL", default="gemini-2.5-flash")
# Service-account JSON file for Vertex AI (empty: Application Default Credentials).
GOOGLE_APPLICATION_CREDENTIALS = env.str("GOOGLE_APPLICATION_CREDENTIALS", default="")

_DETECTED: dict[str, dict[str, Any]] = {
    "openrouter": {
        "kind": "openai",
        "enabled": bool(OPENROUTER_API_KEY),
        "base_url": OPENROUTER_BASE_URL,
        "api_key": OPENROUTER_API_KEY,
        "default_model": OPENROUTER_MODEL,
    },
    "openai": {
        "kind": "openai",
        "enabled": bool(OPENAI_COMPAT_BASE_URL),
        "base_url": OPENAI_COMPAT_BASE_URL,
        # Local servers (Ollama, vLLM, llama.cpp) accept any key; the SDK insists on one.
        "api_key": OPENAI_COMPAT_API_KEY or "not-needed",
        "default_model": OPENAI_COMPAT_MODEL,
    },
    "azure": {
        "kind": "azure",
        "enabled": bool(AZURE_OPENAI_API_KEY and AZURE_OPENAI_ENDPOINT),
        "endpoint": AZURE_OPENAI_ENDPOINT,
        "api_key": AZURE_OPENAI_API_KEY,
        "api_version": AZURE_OPENAI_API_VERSION,
        "default_model": AZURE_OPENAI_DEPLOYMENT,
    },
    "anthropic": {
        "kind": "anthropic",
        "enabled": bool(ANTHROPIC_API_KEY),
        "api_key": ANTHROPIC_API_KEY,
        "base_url": ANTHROPIC_BASE_URL,
        "default_model": ANTHROPIC_MODEL,
    },
    "bedrock": {
        "kind": "bedrock",
        "enabled": BEDROCK_ENABLED,
        "region": AWS_REGION,
        "endpoint_url": BEDROCK_ENDPOINT_URL,
        "default_model": BEDROCK_MODEL,
    },
    "vertex": {
        "kind": "vertex",
        "enabled": bool(VERTEX_PROJECT),
        "project": VERTEX_PROJECT,
        "location": VERTEX_LOCATION,
        "base_url": VERTEX_BASE_URL,
        "credentials_file": GOOGLE_APPLICATION_CREDENTIALS,
        "default_model": VERTEX_MODEL,
    },
}

# LLM_PROVIDERS, when set, names exactly the providers to enable (comma list); otherwise
# every provider whose credentials are present is enabled.
_NAMED = env.list("LLM_PROVIDERS", default=[])
_unknown = [name for name in _NAMED if name not in _DETECTED and name != "offline"]
if _unknown:
    raise ImproperlyConfigured(
        f"LLM_PROVIDERS names unknown providers {_unknown}; "
        f"known: {sorted(_DETECTED) + ['offline']}"
    )

# name -> options (always with "kind"). Tests replace this dict with override_settings.
LLM_PROVIDERS: dict[str, dict[str, Any]] = {
    name: {k: v for k, v in opts.items() if k != "enabled"}
    for name, opts in _DETECTED.items()
    if (name in _NAMED if _NAMED else opts["enabled"])
}
# Extra named providers (e.g. two OpenAI-compatible servers), as a JSON object
# {"ollama": {"kind": "openai", "base_url": "...", "api_key": "..."}}.
LLM_PROVIDERS.update(env.json("LLM_EXTRA_PROVIDERS", default={}))
for _name, _opts in LLM_PROVIDERS.items():
    if _opts.get("kind") not in ("openai", "azure", "anthropic", "bedrock", "vertex", "offline"):
        raise ImproperlyConfigured(f"LLM provider {_name!r} has an unknown kind {_opts!r}")


def _chain(value: str) -> list[str]:
    entries = [item.strip() for item in value.split(",") if item.strip()]
    for entry in entries:
        provider, sep, model = entry.partition(":")
        if not sep or not model:
            raise ImproperlyConfigured(f"LLM chain entry {entry!r} is not 'provider:model'")
        if provider != "offline" and provider not in LLM_PROVIDERS:
            raise ImproperlyConfigured(
                f"LLM chain entry {entry!r} names a provider that is not configured"
            )
    return entries


# Comma list of provider:model every role tries in order (empty: each provider's model).
_default_chain = env.str("LLM_CHAIN_DEFAULT", default="") or ",".join(
    f"{name}:{opts['default_model']}"
    for name, opts in LLM_PROVIDERS.items()
    if opts.get("default_model")
)
# Per role, the ordered list of "provider:model" to try; "default" serves roles without one.
LLM_CHAINS: dict[str, list[str]] = {"default": _chain(_default_chain or "offline:offline")}
for _role in LLM_ROLES:
    _value = env.str(f"LLM_CHAIN_{_role.upper()}", default="")
    if _value:
        LLM_CHAINS[_role] = _chain(_value)

# USD per million tokens, {"model" or "provider:model": [input, output]}, on top of the
# built-in table in providers/pricing.py.
LLM_PRICES: dict[str, Any] = env.json("LLM_PRICES", default={})
for _key, _price in LLM_PRICES.items():
    if not (isinstance(_price, list | tuple) and len(_price) == 2):
        raise ImproperlyConfigured(
            f"LLM_PRICES[{_key!r}] must be [input_usd_per_million, output_usd_per_million], "
            f"got {json.dumps(_price)}"
        )
# Price of a model in neither table, "input,output" USD per million (empty: such a model
# is never called, and a run may not name it).
LLM_DEFAULT_PRICE = env.list("LLM_DEFAULT_PRICE", cast=float, default=[])
if LLM_DEFAULT_PRICE and len(LLM_DEFAULT_PRICE) != 2:
    raise ImproperlyConfigured("LLM_DEFAULT_PRICE must be empty or 'input,output' (USD/million)")

# --- Spending -------------------------------------------------------------------------------
# provider:model entries a run's options may name besides the configured chains' (comma list).
LLM_ALLOWED_MODELS = env.list("LLM_ALLOWED_MODELS", default=[])


def _usd(name: str, value: str) -> Decimal | None:
    if not value.strip():
        return None
    try:
        amount = Decimal(value)
    except InvalidOperation as exc:
        raise ImproperlyConfigured(f"{name} is not a number: {value!r}") from exc
    if not amount.is_finite() or amount <= 0:
        raise ImproperlyConfigured(f"{name} must be a positive amount of USD, or empty")
    return amount


# Most a run may spend, in USD: its budget_usd may not be higher, and a run that names
# none gets this one (empty: no cap).
_run_cap = env.str("LLM_RUN_BUDGET_MAX_USD", default="10")
LLM_RUN_BUDGET_MAX_USD = _usd("LLM_RUN_BUDGET_MAX_USD", _run_cap)
# Most one user's runs may spend in any 24 hours, in USD, checked when a run starts and
# reserved before every model call (empty: no cap).
_daily_cap = env.str("LLM_USER_DAILY_BUDGET_USD", default="50")
LLM_USER_DAILY_BUDGET_USD = _usd("LLM_USER_DAILY_BUDGET_USD", _daily_cap)
for _entry in LLM_ALLOWED_MODELS:
    _chain(_entry)

# --- Router ---------------------------------------------------------------------------------
# Seconds one model call may take before it counts as a (transient) failure.
LLM_TIMEOUT_SECONDS = env.float("LLM_TIMEOUT_SECONDS", default=120.0)
# Output tokens a call may produce (also the worst case the budget check assumes).
LLM_MAX_OUTPUT_TOKENS = env.int("LLM_MAX_OUTPUT_TOKENS", default=4096)
# Attempts per model on transient errors (429, 5xx, timeouts) before failing over.
LLM_RETRY_MAX_ATTEMPTS = env.int("LLM_RETRY_MAX_ATTEMPTS", default=3)
# First retry backoff in seconds (doubles each attempt, with jitter).
LLM_RETRY_BACKOFF_SECONDS = env.float("LLM_RETRY_BACKOFF_SECONDS", default=0.5)
# Longest retry backoff in seconds.
LLM_RETRY_BACKOFF_MAX_SECONDS = env.float("LLM_RETRY_BACKOFF_MAX_SECONDS", default=8.0)
# A Retry-After longer than this fails over instead of waiting.
LLM_RETRY_AFTER_MAX_SECONDS = env.float("LLM_RETRY_AFTER_MAX_SECONDS", default=30.0)
# Consecutive failures that open a circuit (calls skip it and fail over).
LLM_CIRCUIT_FAILURE_THRESHOLD = env.int("LLM_CIRCUIT_FAILURE_THRESHOLD", default=3)
# Seconds an open circuit waits before one probe call may try again.
LLM_CIRCUIT_COOLDOWN_SECONDS = env.float("LLM_CIRCUIT_COOLDOWN_SECONDS", default=30.0)
# Responses to temperature-0 calls are kept this long; 0 disables the cache.
LLM_CACHE_TTL_SECONDS = env.int("LLM_CACHE_TTL_SECONDS", default=86400)
# GET /admin/providers reports calls, errors and latency percentiles over this window.
LLM_STATS_WINDOW_SECONDS = env.int("LLM_STATS_WINDOW_SECONDS", default=900)

# Milliseconds the offline (deterministic local) model waits before each answer.
OFFLINE_LATENCY_MS = env.int("OFFLINE_LATENCY_MS", default=0)

for _setting in (
    "LLM_RETRY_MAX_ATTEMPTS",
    "LLM_CIRCUIT_FAILURE_THRESHOLD",
    "LLM_MAX_OUTPUT_TOKENS",
):
    if globals()[_setting] < 1:
        raise ImproperlyConfigured(f"{_setting} must be at least 1")
