"""How good the cost forecast is, over an evaluation's runs.

Before each case's run starts, the evaluation asks for its forecast exactly as the generate
form does (``pipeline.forecast.run_estimate``: this user's history first, then everyone's,
then the stated default, each case seeing only the runs finished before it). Once the run
is done its real cost, tokens and wall time are set against the forecast: the mean absolute
percentage error of the p50 (over runs whose real figure is above zero) and how often the
real figure fell inside p10 to p90. Only completed runs count.
"""

from __future__ import annotations

from collections import Counter
from decimal import Decimal
from typing import Any

from common.errors import ApplicationError

from ..forecast import run_estimate


def forecast_for_case(*, project: Any, user: Any, prompt: str, chain: list[str]) -> dict | None:
    """The forecast of a fresh run of ``prompt`` on ``chain`` (None when it cannot be made)."""
    try:
        found = run_estimate(
            project=project,
            user=user,
            prompt=prompt,
            options={"providers": chain},
            base_run_id=None,
        )
    except ApplicationError:
        return None
    return found.as_dict()


def _error(forecast: dict[str, Any], actual: float) -> tuple[float | None, bool]:
    """(absolute percentage error of p50, None when the real figure is 0; inside p10-p90)."""
    p10, p50, p90 = (float(forecast[f"p{p}"]) for p in (10, 50, 90))
    inside = p10 <= actual <= p90
    if actual <= 0:
        return None, inside
    return abs(p50 - actual) / actual * 100, inside


def _measures(done: list[Any]) -> dict[str, Any]:
    measures = {
        "cost_usd": lambda c: float(c.cost_usd),
        "tokens": lambda c: float(c.tokens_in + c.tokens_out),
        "seconds": lambda c: c.wall_seconds,
    }
    figures: dict[str, Any] = {"runs": len(done)}
    for name, actual_of in measures.items():
        errors, inside, counted = [], 0, 0
        for case in done:
            actual = actual_of(case)
            if actual is None:
                continue
            error, within = _error(case.forecast[name], actual)
            counted += 1
            inside += within
            if error is not None:
                errors.append(error)
        figures[name] = {
            "mape_percent": round(sum(errors) / len(errors), 1) if errors else None,
            "inside_p10_p90": round(inside / counted, 3) if counted else None,
        }
    return figures


def forecast_figures(cases: list[Any]) -> dict[str, Any]:
    """Over the completed cases with a forecast: per measure (cost, tokens, seconds) the mean
    absolute percentage error of the p50 and the share inside p10-p90, for every run and for
    the runs forecast from a history (not the stated default); the bases used."""
    done = [c for c in cases if c.forecast is not None and c.status == "completed"]
    learned = [c for c in done if c.forecast["basis"] != "default"]
    return {
        "runs": len(done),
        "basis": dict(Counter(c.forecast["basis"] for c in done)),
        "all": _measures(done),
        "from_history": _measures(learned),
    }


def forecast_summary(cases: list[Any]) -> str:
    """The figures in plain words: every run, then those forecast from a history."""
    figures = forecast_figures(cases)
    if not figures["runs"]:
        return "forecast: no completed run with a forecast"

    def group(item: dict[str, Any]) -> str:
        parts = []
        for name, label in (("cost_usd", "cost"), ("tokens", "tokens"), ("seconds", "wall time")):
            mape, inside = item[name]["mape_percent"], item[name]["inside_p10_p90"]
            parts.append(
                f"{label} MAPE {'-' if mape is None else f'{mape:.1f}%'}, inside p10-p90 "
                + ("-" if inside is None else f"{inside * 100:.0f}%")
            )
        return "; ".join(parts)

    bases = ", ".join(f"{basis} {n}" for basis, n in sorted(figures["basis"].items()))
    line = f"forecast over {figures['runs']} runs ({bases}): {group(figures['all'])}"
    if figures["from_history"]["runs"]:
        line += f" | the {figures['from_history']['runs']} forecast from a history: " + group(
            figures["from_history"]
        )
    return line


def decimal_free(value: Any) -> Any:
    """``value`` with Decimals as strings (for JSON)."""
    if isinstance(value, dict):
        return {k: decimal_free(v) for k, v in value.items()}
    if isinstance(value, list):
        return [decimal_free(v) for v in value]
    return str(value) if isinstance(value, Decimal) else value
