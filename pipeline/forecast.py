"""What a run will cost and take, before it starts (``POST /projects/{id}/estimate``).

A forecast reprices the token history of past runs at today's prices of the chosen chains:

1. **History.** The most recent completed runs (``FORECAST_HISTORY_RUNS``) of this user,
   if there are at least ``FORECAST_MIN_HISTORY_RUNS``; else everyone's on this server; else
   the stated default below. ``basis`` says which (``user``, ``everyone``, ``default``).
   Within a history, runs of the same kind (a follow-up, or a fresh start) are preferred
   when there are enough of them. Forks are left out: their reused steps made no call.
2. **Tokens per role.** Each past run gives its tokens in and out per role (architect,
   planner, orchestrator, coder, tester, integrator) and its number of model calls per role.
   Every call carries the prompt, so the input tokens move by the difference between this
   prompt's length and that run's (about four characters a token) times the calls.
3. **Prices.** Each role's tokens are priced at the first priced model of the chain the run
   would use: ``options.providers`` when given, else the configured chain of the role
   (``providers.pricing``). A cost never goes past the run's budget, where the run stops.
4. **Spread.** The percentiles p10, p50 and p90 over the repriced runs (linear
   interpolation); the seconds are the runs' wall time less the time they waited at the
   approval gate or paused.

The stated default (no history at all) is a typical three-task run, ``DEFAULT_TOKENS``
below, spread from half (p10) to two and a half times (p90) for extra design rounds and fix
attempts, and ``DEFAULT_SECONDS``. The forecast reads rows only; it never calls a model.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db.models import Q, Sum

from common.errors import ApplicationError
from providers.pricing import MILLION, price_or_none
from providers.router import chain_for

from .models import Run, Step
from .services.followups import BaseRunChoice, run_base_resolve
from .services.runs import run_options_validate

ROLES = ("architect", "planner", "orchestrator", "coder", "tester", "integrator")
CHARS_PER_TOKEN = 4
# A typical three-task run on the default settings: (tokens in, tokens out, model calls).
DEFAULT_TOKENS: dict[str, tuple[int, int, int]] = {
    "architect": (3_000, 2_500, 1),
    "planner": (4_500, 1_500, 1),
    "orchestrator": (3_000, 600, 1),
    "coder": (12_000, 9_000, 3),
    "tester": (15_000, 1_500, 3),
    "integrator": (6_000, 1_500, 1),
}
# Multipliers of the default run at p10, p50, p90.
DEFAULT_SPREAD = (0.5, 1.0, 2.5)
DEFAULT_SECONDS = (60.0, 240.0, 900.0)
PERCENTILES = (10, 50, 90)


@dataclass
class Sample:
    """One past run as the forecast reads it."""

    run_id: int
    tokens: dict[str, tuple[int, int]] = field(default_factory=dict)  # role -> (in, out)
    calls: dict[str, int] = field(default_factory=dict)  # role -> model calls
    prompt_chars: int = 0
    seconds: float | None = None


@dataclass
class Forecast:
    """Percentiles (p10, p50, p90) of cost, seconds and tokens, and what they rest on."""

    cost_usd: tuple[Decimal, Decimal, Decimal]
    seconds: tuple[float, float, float]
    tokens: tuple[int, int, int]
    basis: str
    history_runs: int
    follow_up: bool
    prices: dict[str, str]
    detail: str

    def as_dict(self) -> dict[str, Any]:
        def spread(values: tuple[Any, Any, Any]) -> dict[str, Any]:
            return {f"p{p}": value for p, value in zip(PERCENTILES, values, strict=True)}

        return {
            "cost_usd": spread(self.cost_usd),
            "seconds": spread(self.seconds),
            "tokens": spread(self.tokens),
            "basis": self.basis,
            "history_runs": self.history_runs,
            "follow_up": self.follow_up,
            "prices": self.prices,
            "detail": self.detail,
        }


def percentile(values: list[float], p: float) -> float:
    """The ``p``-th percentile of ``values`` (linear interpolation between ranks)."""
    ordered = sorted(values)
    if not ordered:
        raise ValueError("no values")
    rank = (len(ordered) - 1) * p / 100
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def role_prices(options: dict[str, Any]) -> dict[str, tuple[str, Decimal, Decimal]]:
    """Per role, the model the run would call first and its price per million tokens."""
    prices = {}
    for role in ROLES:
        chain = list(options.get("providers") or []) or chain_for(role)
        for entry in chain:
            provider, _, model = entry.partition(":")
            price = price_or_none(provider=provider, model=model)
            if price is not None:
                prices[role] = (entry, price[0], price[1])
                break
        else:
            raise ApplicationError(
                f"No model of the {role}'s chain has a price, so a run could not call one.",
                code="unpriced_model",
            )
    return prices


def _working_seconds(run: Run) -> float | None:
    """Wall time of a finished run less what it spent waiting for approval or paused."""
    if run.finished_at is None:
        return None
    seconds = (run.finished_at - run.created_at).total_seconds() - (run.paused_seconds or 0.0)
    designed = ((run.stages or {}).get("design") or {}).get("completed_at")
    if run.approved_at is not None and designed:
        waited = (run.approved_at - datetime.fromisoformat(designed)).total_seconds()
        seconds -= max(waited, 0.0)
    return max(seconds, 0.0)


def history(*, user_id: int | None, follow_up: bool) -> tuple[str, list[Sample]]:
    """The history a forecast rests on: (basis, samples); see the module docstring."""
    need = settings.FORECAST_MIN_HISTORY_RUNS
    done = Run.objects.filter(status=Run.Status.COMPLETED, forked_from__isnull=True).filter(
        fork_point=""
    )
    scopes = []
    if user_id is not None:
        scopes.append(("user", done.filter(created_by_id=user_id)))
    scopes.append(("everyone", done))
    for basis, runs in scopes:
        same_kind = runs.filter(base_run__isnull=not follow_up)
        for chosen in (same_kind, runs):
            picked = list(chosen.order_by("-finished_at", "-id")[: settings.FORECAST_HISTORY_RUNS])
            if len(picked) >= need:
                return basis, _samples(picked)
    return "default", []


def _samples(runs: list[Run]) -> list[Sample]:
    samples = {
        run.pk: Sample(run_id=run.pk, prompt_chars=len(run.prompt), seconds=_working_seconds(run))
        for run in runs
    }
    rows = (
        Step.objects.filter(run_id__in=list(samples), reused=False)
        .filter(Q(tokens_in__gt=0) | Q(tokens_out__gt=0) | Q(llm_calls__gt=0))
        .values("run_id", "role")
        .annotate(tin=Sum("tokens_in"), tout=Sum("tokens_out"), n_calls=Sum("llm_calls"))
    )
    for row in rows:
        sample = samples[row["run_id"]]
        sample.tokens[row["role"]] = (int(row["tin"] or 0), int(row["tout"] or 0))
        sample.calls[row["role"]] = int(row["n_calls"] or 0)
    return list(samples.values())


def _priced(
    tokens: dict[str, tuple[int, int]], prices: dict[str, tuple[str, Decimal, Decimal]]
) -> Decimal:
    total = Decimal(0)
    for role, (tokens_in, tokens_out) in tokens.items():
        _, price_in, price_out = prices.get(role) or prices["coder"]
        total += tokens_in * price_in + tokens_out * price_out
    return total / MILLION


def _adjusted(sample: Sample, prompt_chars: int) -> dict[str, tuple[int, int]]:
    """The sample's tokens with this prompt in place of its own in every call."""
    shift = (prompt_chars - sample.prompt_chars) / CHARS_PER_TOKEN
    return {
        role: (max(int(tokens_in + shift * sample.calls.get(role, 0)), 0), tokens_out)
        for role, (tokens_in, tokens_out) in sample.tokens.items()
    }


def forecast(
    *, user_id: int | None, prompt: str, options: dict[str, Any], follow_up: bool
) -> Forecast:
    """The forecast of a run of ``prompt`` with validated ``options`` (see the module)."""
    prices = role_prices(options)
    budget = options.get("budget_usd")
    cap = Decimal(str(budget)) if budget is not None else None
    basis, samples = history(user_id=user_id, follow_up=follow_up)
    if samples:
        adjusted = [_adjusted(sample, len(prompt)) for sample in samples]
        costs = [float(_priced(tokens, prices)) for tokens in adjusted]
        totals = [float(sum(a + b for a, b in tokens.values())) for tokens in adjusted]
        walls = [s.seconds for s in samples if s.seconds is not None]
        cost = tuple(Decimal(str(percentile(costs, p))) for p in PERCENTILES)
        tokens = tuple(round(percentile(totals, p)) for p in PERCENTILES)
        seconds = tuple(percentile(walls, p) for p in PERCENTILES) if walls else DEFAULT_SECONDS
        if basis == "user":
            detail = f"From your last {len(samples)} completed runs"
        else:
            detail = (
                f"From this server's last {len(samples)} completed runs (you have fewer than "
                f"{settings.FORECAST_MIN_HISTORY_RUNS} of your own)"
            )
    else:
        base = {role: (tin, tout) for role, (tin, tout, _) in DEFAULT_TOKENS.items()}
        calls = {role: n for role, (_, _, n) in DEFAULT_TOKENS.items()}
        shifted = _adjusted(Sample(run_id=0, tokens=base, calls=calls), len(prompt))
        one = _priced(shifted, prices)
        total = sum(a + b for a, b in shifted.values())
        cost = tuple(one * Decimal(str(m)) for m in DEFAULT_SPREAD)
        tokens = tuple(round(total * m) for m in DEFAULT_SPREAD)
        seconds = DEFAULT_SECONDS
        detail = (
            "A stated default, as there are no completed runs to learn from yet: a typical "
            "three-task run"
        )
    capped = tuple(min(c, cap) if cap is not None else c for c in cost)
    detail += ", priced at " + ", ".join(
        sorted({f"{entry} (${p_in}/${p_out} per million tokens)"
                for entry, p_in, p_out in prices.values()})
    )  # fmt: skip
    if capped != cost:
        detail += f"; capped at the run's budget of ${cap}"
    return Forecast(
        cost_usd=tuple(c.quantize(Decimal("0.000001")) for c in capped),  # type: ignore[arg-type]
        seconds=tuple(round(s, 1) for s in seconds),  # type: ignore[arg-type]
        tokens=tokens,  # type: ignore[arg-type]
        basis=basis,
        history_runs=len(samples),
        follow_up=follow_up,
        prices={role: entry for role, (entry, _, _) in prices.items()},
        detail=detail + ".",
    )


def run_estimate(
    *,
    project: Any,
    user: Any,
    prompt: str,
    options: dict[str, Any] | None = None,
    base_run_id: BaseRunChoice = "latest",
) -> Forecast:
    """The forecast of ``POST /projects/{id}/generate`` with the same body, before it starts.

    ``options`` and ``base_run`` are checked as a run's would be (400 / 404 alike); the
    prompt may still be empty (the form asks while it is being written).
    """
    prompt = (prompt or "").strip()
    if len(prompt) > settings.PIPELINE_PROMPT_MAX_CHARS:
        raise ApplicationError(
            f"The prompt may be at most {settings.PIPELINE_PROMPT_MAX_CHARS} characters.",
            code="invalid_prompt",
        )
    validated = run_options_validate(options)
    base = run_base_resolve(project=project, user=user, base_run_id=base_run_id)
    return forecast(
        user_id=getattr(user, "pk", None),
        prompt=prompt,
        options=validated,
        follow_up=base is not None,
    )
