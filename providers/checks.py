"""System checks: ``manage.py check`` (and every process start) warns about chain models
that have no price, since the router never calls them."""

from typing import Any

from django.conf import settings
from django.core.checks import Warning as CheckWarning
from django.core.checks import register

from .pricing import price_or_none
from .router import split_entry


@register()
def unpriced_models_check(app_configs: Any = None, **_: Any) -> list[CheckWarning]:
    """One warning per configured ``provider:model`` without a price."""
    entries = [entry for chain in settings.LLM_CHAINS.values() for entry in chain]
    unpriced = [
        entry
        for entry in dict.fromkeys([*entries, *settings.LLM_ALLOWED_MODELS])
        if price_or_none(provider=split_entry(entry)[0], model=split_entry(entry)[1]) is None
    ]
    return [
        CheckWarning(
            f"{entry} has no price, so it is never called.",
            hint="Set its price in LLM_PRICES (USD per million input and output tokens) "
            "or a price for every unlisted model in LLM_DEFAULT_PRICE.",
            id="providers.W001",
        )
        for entry in unpriced
    ]
