"""Reads of the providers app: which models a run may name, and the status report behind
``GET /admin/providers``."""

from datetime import UTC, datetime
from typing import Any

from django.conf import settings

from .circuit import circuit_state
from .pricing import price_or_none
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


def models_allowed() -> list[str]:
    """``provider:model`` entries a run's options may name: every configured chain's, then
    the operator's ``LLM_ALLOWED_MODELS``."""
    entries = [entry for chain in settings.LLM_CHAINS.values() for entry in chain]
    return list(dict.fromkeys([*entries, *settings.LLM_ALLOWED_MODELS]))


def model_refusal(entry: str) -> str | None:
    """Why a run may not name ``provider:model`` (None: it may).

    Only models of the configured chains or the operator's allow-list may be chosen, and
    only with a price: a user naming any model id would otherwise spend without a bound.
    """
    if entry not in models_allowed():
        return (
            f"{entry!r} is not one of the configured models "
            f"({', '.join(models_allowed())}); the operator may allow more (LLM_ALLOWED_MODELS)"
        )
    provider, model = split_entry(entry)
    if price_or_none(provider=provider, model=model) is None:
        return f"{entry!r} has no price; the operator must set one (LLM_PRICES)"
    return None


def providers_status() -> dict[str, Any]:
    """Providers and models with circuit state, calls, errors and p50 / p95 latency."""
    providers = []
    for name, models in configured_models().items():
        options = settings.LLM_PROVIDERS.get(name, {"kind": "offline"})
        circuit = circuit_state(name)
        model_rows = []
        for model, roles in models.items():
            price = price_or_none(provider=name, model=model)
            model_rows.append(
                {
                    "model": model,
                    "roles": roles,
                    # None: unpriced, so never called until the operator sets a price.
                    "price_usd_per_million": (
                        {"input": str(price[0]), "output": str(price[1])} if price else None
                    ),
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
