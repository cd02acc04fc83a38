"""Fixtures of the providers tests: stub vendor servers and fast router settings."""

from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

import pytest

from tests.providers.stubs import Responder, StubServer, openai_reply


@pytest.fixture
def stub_server() -> Iterator[Callable[[Responder], StubServer]]:
    """Start stub vendor servers; all are shut down after the test."""
    servers: list[StubServer] = []

    def start(default: Responder = lambda _: openai_reply("ok")) -> StubServer:
        server = StubServer(default)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.close()


@pytest.fixture
def llm_settings(settings: Any) -> Any:
    """Router settings that keep tests fast: tiny backoffs, a long cool-down by default."""
    settings.LLM_PROVIDERS = {}
    settings.LLM_CHAINS = {"default": ["offline:offline"]}
    settings.LLM_PRICES = {}
    # Stub vendors' made-up model ids cost nothing unless a test prices them (or, to see
    # unpriced models refused, sets this back to the default: []).
    settings.LLM_DEFAULT_PRICE = [0.0, 0.0]
    settings.LLM_USER_DAILY_BUDGET_USD = None
    settings.LLM_RETRY_MAX_ATTEMPTS = 3
    settings.LLM_RETRY_BACKOFF_SECONDS = 0.001
    settings.LLM_RETRY_BACKOFF_MAX_SECONDS = 0.01
    settings.LLM_RETRY_AFTER_MAX_SECONDS = 30.0
    settings.LLM_CIRCUIT_FAILURE_THRESHOLD = 3
    settings.LLM_CIRCUIT_COOLDOWN_SECONDS = 60.0
    settings.LLM_CACHE_TTL_SECONDS = 3600
    settings.LLM_TIMEOUT_SECONDS = 10.0
    settings.LLM_MAX_OUTPUT_TOKENS = 256
    settings.OFFLINE_LATENCY_MS = 0
    return settings


class Ledger:
    """A run as ``complete(run=...)`` sees it (the pipeline's ledger, in memory).

    ``user_spent`` is what the run's user spent over the last day before this run; the
    run's own spending adds to it.
    """

    def __init__(
        self,
        budget: str | None = None,
        run_id: int | None = 7,
        user_id: int | None = 1,
        user_spent: str = "0",
    ):
        self.run_id = run_id
        self.user_id = user_id
        self.budget = Decimal(budget) if budget is not None else None
        self.spent = Decimal(0)
        self.user_spent_before = Decimal(user_spent)
        self.usages: list[Any] = []
        self.failovers: list[dict[str, Any]] = []

    def remaining_budget_usd(self) -> Decimal | None:
        return None if self.budget is None else self.budget - self.spent

    def user_spent_last_day_usd(self) -> Decimal | None:
        return None if self.user_id is None else self.user_spent_before + self.spent

    def record_usage(self, completion: Any) -> None:
        self.usages.append(completion)
        self.spent += completion.cost_usd

    def failover(self, info: dict[str, Any]) -> None:
        self.failovers.append(info)


@pytest.fixture
def ledger() -> Ledger:
    return Ledger()
