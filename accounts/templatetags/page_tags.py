"""Template filters the dashboard pages share: lookups, sizes, durations, money."""

import json
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from django import template

register = template.Library()


@register.filter
def get(mapping: Any, key: Any) -> Any:
    """``mapping[key]`` (``None`` when missing): ``errors|get:"email"``."""
    try:
        return mapping.get(key)
    except AttributeError:
        return None


@register.filter
def filesize(value: Any) -> str:
    """Bytes in a short human form: 930 B, 4.2 kB, 1.3 MB."""
    try:
        size = float(value)
    except (TypeError, ValueError):
        return ""
    for unit in ("B", "kB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return ""


def seconds_text(seconds: float) -> str:
    """A duration in words a person reads at a glance: 850 ms, 12.4 s, 3 min 05 s, 1 h 02 min."""
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


@register.filter
def duration(start: datetime | None, end: datetime | None) -> str:
    """``start|duration:end``: the time between them, or "" when either is missing."""
    if start is None or end is None:
        return ""
    return seconds_text(max(0.0, (end - start).total_seconds()))


@register.filter
def milliseconds(value: Any) -> str:
    """Milliseconds as a duration: ``latency_ms|milliseconds``."""
    try:
        return seconds_text(float(value) / 1000)
    except (TypeError, ValueError):
        return ""


@register.filter
def usd(value: Any) -> str:
    """Dollars with cents, and more digits for amounts under a cent: $0.0042."""
    try:
        amount = Decimal(str(value))
    except (InvalidOperation, TypeError, ValueError):
        return ""
    if amount != 0 and abs(amount) < Decimal("0.01"):
        return f"${amount:.4f}"
    return f"${amount:,.2f}"


@register.filter
def thousands(value: Any) -> str:
    """An integer with thousands separators."""
    try:
        return f"{int(value):,}"
    except (TypeError, ValueError):
        return ""


@register.filter
def pretty_json(value: Any) -> str:
    """``value`` as indented JSON text (escaped by the template like any text)."""
    return json.dumps(value, indent=2, ensure_ascii=False, default=str)
