"""Reads of the providers app: the status report behind ``GET /admin/providers``."""

from datetime import UTC, datetime
from typing import Any

from django.conf import settings

from .circuit import circuit_state
from .pricing import price_for
from .router import split_entry
from .stats import stats_for


def configured_models() -> dict[str, dict[str, list[str]]]:
    """provider -> model -> the roles (or "default") whose chain names it."""
    found: dict[str, dict[str, list[str]]] = {name: {} for name in settings.LLM_PROVIDERS}
    for name, options in settings.LLM_PROVIDERS.items():
        if options.get("default_model"):
            found[name].setdefault(options["default_model"], [])
    for role, chain in settings.LLM_CHAINS.items():
        for entry in chain:
            provider, model = split_entry(entry)
            roles = found.setdefault(provider, {}).setdefault(model, [])
            if role not in roles:
                roles.append(role)
    return found


def providers_status() -> dict[str, Any]:
    """Providers and models with circuit state, calls, errors and p50 / p95 latency."""
    providers = []
    for name, models in configured_models().items():
        options = settings.LLM_PROVIDERS.get(name, {"kind": "offline"})
        circuit = circuit_state(name)
        model_rows = []
        for model, roles in models.items():
            price_in, price_out = price_for(provider=name, model=model)
            model_rows.append(
                {
                    "model": model,
                    "roles": roles,
                    "price_usd_per_million": {"input": str(price_in), "output": str(price_out)},
                    **stats_for(provider=name, model=model),
                }
            )
        providers.append(
            {
                "name": name,
                "kind": options.get("kind"),
                "circuit": {
                    "state": circuit.state,
                    "consecutive_failures": circuit.failures,
                    "opened_at": (
                        datetime.fromtimestamp(circuit.opened_at, UTC).isoformat()
                        if circuit.opened_at
                        else None
                    ),
                },
                "models": model_rows,
            }
        )
    return {
        "offline_default": not settings.LLM_PROVIDERS,
        "window_seconds": settings.LLM_STATS_WINDOW_SECONDS,
        "chains": settings.LLM_CHAINS,
        "providers": providers,
    }
