"""Prometheus metrics of LLM calls, by provider and model (served on ``/metrics``)."""

from prometheus_client import Counter, Histogram

LLM_CALLS = Counter(
    "llm_calls_total", "LLM calls, by outcome (ok, error, cached)", ["provider", "model", "outcome"]
)
LLM_TOKENS = Counter(
    "llm_tokens_total", "Tokens sent and received", ["provider", "model", "direction"]
)
LLM_COST = Counter("llm_cost_usd_total", "What LLM calls cost, in USD", ["provider", "model"])
LLM_ERRORS = Counter(
    "llm_errors_total",
    "Failed LLM calls, by kind (status code or 'transport')",
    ["provider", "model", "kind"],
)
LLM_FAILOVERS = Counter(
    "llm_failovers_total",
    "Moves from a model to the next of its chain, by the model left",
    ["provider", "model", "reason"],
)
LLM_LATENCY = Histogram(
    "llm_call_duration_seconds",
    "Latency of LLM calls that reached a model",
    ["provider", "model"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300),
)
