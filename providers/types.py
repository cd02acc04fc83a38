"""The public types of the providers app: what ``complete()`` returns and raises.

This is the contract the pipeline builds against; keep it stable (add, do not rename).
"""

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Protocol

from pydantic import BaseModel


@dataclass
class Completion:
    """One model answer, with what it cost."""

    text: str
    parsed: BaseModel | None
    tokens_in: int
    tokens_out: int
    cost_usd: Decimal
    model: str
    provider: str
    latency_ms: int
    attempts: int = 1
    cached: bool = False
    # Replayed from the ledger's stored answers (``UsageLedger.replay``): nothing was sent.
    replayed: bool = False
    failovers: list[dict[str, Any]] = field(default_factory=list)


class ProviderError(Exception):
    """No model of the role's chain produced a usable answer. ``code`` says why."""

    code = "provider_failed"

    def __init__(self, detail: str, *, code: str | None = None):
        super().__init__(detail)
        self.detail = detail
        if code:
            self.code = code


class BudgetExceeded(ProviderError):
    """The call would take the run past its budget; nothing was sent."""

    code = "budget"


class DailyBudgetExceeded(BudgetExceeded):
    """The call would take the run's user past ``LLM_USER_DAILY_BUDGET_USD``; nothing was sent."""

    code = "daily_budget"


class UnpricedModel(ProviderError):
    """The model has no price, so no budget could bound it: it is never called."""

    code = "unpriced_model"


@dataclass
class Reservation:
    """What ``UsageLedger.reserve`` answers: whether the call's worst case is now held against
    the user's daily cap and the run's budget, and what each had left before (None: no such
    bound)."""

    granted: bool
    daily_left_usd: Decimal | None = None
    run_left_usd: Decimal | None = None


class UsageLedger(Protocol):
    """What ``complete(run=...)`` needs from a run, without importing the pipeline.

    ``remaining_budget_usd`` is None when the run has no budget. ``user_spent_last_day_usd``
    is what the run's user spent over the last 24 hours (None: no user), checked against
    ``LLM_USER_DAILY_BUDGET_USD`` before every call. ``record_usage`` is called once per
    call that reached a model (not for cache hits), as soon as its answer is in hand and
    before the next call is sent, with ``parsed`` set when the answer fit the schema.
    ``run_id`` keys caches and logs; ``user_id`` (the tenant) scopes the circuits that the
    user's own bad requests open. ``failover`` is told of every failover.

    A ledger may also offer ``replay() -> Completion | None``: the answers it already paid
    for, one per call, in order (a step taken over after its worker died). ``complete``
    asks it before each call and sends nothing while it has one.

    A ledger may also reserve instead of being asked what was spent:
    ``reserve(amount_usd=, daily_cap_usd=) -> Reservation`` holds a call's worst case against
    the user's daily cap and checks the run's budget, atomically, before the call (it then
    replaces any reservation it held); ``record_usage`` settles the reservation with what
    the call really cost, and ``release()`` gives it back when no answer came. The router
    uses ``reserve`` whenever a ledger offers it.
    """

    run_id: int | None
    user_id: int | None

    def remaining_budget_usd(self) -> Decimal | None: ...

    def user_spent_last_day_usd(self) -> Decimal | None: ...

    def record_usage(self, completion: Completion) -> None: ...

    def failover(self, info: dict[str, Any]) -> None: ...
