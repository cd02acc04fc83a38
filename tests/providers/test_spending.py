"""Spending is bounded: unpriced models are never called, a user's daily budget is checked
before every call, and a user's own bad requests close a model only for that user."""

from decimal import Decimal

import pytest

from providers import router
from providers.circuit import circuit_scope, circuit_state
from providers.services import complete
from providers.types import DailyBudgetExceeded, ProviderError, UnpricedModel
from tests.providers.conftest import Ledger
from tests.providers.stubs import openai_error, openai_reply

MESSAGES = [{"role": "user", "content": "Write a CLI timer."}]


@pytest.fixture
def vendor(llm_settings, stub_server):
    """One OpenAI-compatible provider: gpt-4o is priced (built-in table), mystery is not."""
    server = stub_server(lambda _: openai_reply("fine", prompt_tokens=100, completion_tokens=20))
    llm_settings.LLM_PROVIDERS = {
        "vendor": {"kind": "openai", "base_url": server.url + "/v1", "api_key": "k"}
    }
    llm_settings.LLM_DEFAULT_PRICE = []  # the production default: no price, no call
    return server


@pytest.fixture
def delays(monkeypatch):
    recorded: list[float] = []
    monkeypatch.setattr(router, "sleep", recorded.append)
    return recorded


def _models_called(server) -> list[str]:
    return [request.json["model"] for request in server.requests]


# --- Prices ---------------------------------------------------------------------------------


def test_a_model_without_a_price_is_never_called(vendor):
    with pytest.raises(UnpricedModel) as raised:
        complete(role="coder", messages=MESSAGES, chain=["vendor:mystery"], run=Ledger())

    assert vendor.requests == []
    assert raised.value.code == "unpriced_model"
    assert "vendor:mystery" in raised.value.detail


def test_a_chain_skips_its_unpriced_model_for_the_next_priced_one(vendor):
    ledger = Ledger()

    completion = complete(
        role="coder", messages=MESSAGES, chain=["vendor:mystery", "vendor:gpt-4o"], run=ledger
    )

    assert _models_called(vendor) == ["gpt-4o"]
    assert completion.model == "gpt-4o"
    assert [failover["reason"] for failover in ledger.failovers] == ["unpriced"]


def test_an_operator_price_lets_an_unlisted_model_be_called_and_costed(vendor, llm_settings):
    llm_settings.LLM_DEFAULT_PRICE = [1.0, 2.0]

    completion = complete(role="coder", messages=MESSAGES, chain=["vendor:mystery"])

    assert _models_called(vendor) == ["mystery"]
    assert completion.cost_usd == (100 * Decimal(1) + 20 * Decimal(2)) / 1_000_000


# --- The user's daily budget ----------------------------------------------------------------


def test_a_call_that_may_pass_the_users_daily_budget_is_refused_and_not_sent(vendor, llm_settings):
    llm_settings.LLM_USER_DAILY_BUDGET_USD = Decimal("1.00")
    llm_settings.LLM_MAX_OUTPUT_TOKENS = 1000  # gpt-4o: up to $0.01 of output
    ledger = Ledger(user_spent="0.995")

    with pytest.raises(DailyBudgetExceeded) as raised:
        complete(role="coder", messages=MESSAGES, chain=["vendor:gpt-4o"], run=ledger)

    assert vendor.requests == []
    assert ledger.usages == []
    assert raised.value.code == "daily_budget"
    assert "$1.00" in raised.value.detail


def test_the_daily_budget_is_checked_again_before_every_call(vendor, llm_settings):
    llm_settings.LLM_USER_DAILY_BUDGET_USD = Decimal("1.00")
    ledger = Ledger(user_spent="0.9965")  # $0.0035 left
    # Each call may cost up to $0.003325 (the prompt and 330 output tokens); the first
    # costs $0.00045, and the $0.00305 left then no longer covers a second one.
    chain = ["vendor:gpt-4o"]
    complete(role="coder", messages=MESSAGES, chain=chain, run=ledger, max_tokens=330)

    with pytest.raises(DailyBudgetExceeded):
        complete(role="coder", messages=MESSAGES, chain=chain, run=ledger, max_tokens=330)

    assert len(vendor.requests) == 1


def test_without_a_daily_cap_the_users_spending_does_not_matter(vendor, llm_settings):
    llm_settings.LLM_USER_DAILY_BUDGET_USD = None

    complete(role="coder", messages=MESSAGES, chain=["vendor:gpt-4o"], run=Ledger(user_spent="1e6"))

    assert len(vendor.requests) == 1


# --- Circuits: whose failure it was ---------------------------------------------------------


@pytest.fixture
def bad_requests(vendor, llm_settings):
    """gpt-4o refuses every request with a 400 (e.g. a prompt its filter rejects); gpt-4o-mini
    answers. Both are in the chain, in that order."""
    vendor.default = lambda received: (
        openai_error(400) if received.json["model"] == "gpt-4o" else openai_reply("from mini")
    )
    llm_settings.LLM_CHAINS = {"default": ["vendor:gpt-4o", "vendor:gpt-4o-mini"]}
    return vendor


def test_a_users_bad_requests_close_that_model_for_that_user_only(bad_requests, delays):
    alice, bob = Ledger(user_id=1), Ledger(user_id=2)
    for _ in range(3):  # LLM_CIRCUIT_FAILURE_THRESHOLD
        assert complete(role="coder", messages=MESSAGES, run=alice).text == "from mini"
    assert circuit_state(circuit_scope("vendor", "gpt-4o", 1)).state == "open"
    bad_requests.requests.clear()

    complete(role="coder", messages=MESSAGES, run=alice)
    complete(role="coder", messages=MESSAGES, run=bob)

    # Alice's next call skips gpt-4o; Bob's still reaches it; the provider stays closed.
    assert _models_called(bad_requests) == ["gpt-4o-mini", "gpt-4o", "gpt-4o-mini"]
    assert alice.failovers[-1]["reason"] == "circuit_open"
    assert circuit_state("vendor").state == "closed"
    assert circuit_state("vendor").failures == 0
    assert circuit_state(circuit_scope("vendor", "gpt-4o", 2)).failures == 1


def test_a_users_bad_requests_leave_the_providers_other_models_open_to_them(
    bad_requests, llm_settings, delays
):
    alice = Ledger(user_id=1)
    for _ in range(3):
        complete(role="coder", messages=MESSAGES, run=alice)
    bad_requests.requests.clear()

    completion = complete(role="coder", messages=MESSAGES, chain=["vendor:gpt-4o-mini"], run=alice)

    assert completion.text == "from mini"
    assert _models_called(bad_requests) == ["gpt-4o-mini"]


@pytest.mark.parametrize("status", [503, 401])
def test_provider_failures_still_open_the_providers_circuit_for_every_user(
    vendor, llm_settings, delays, status
):
    vendor.default = lambda _: openai_error(status)
    llm_settings.LLM_RETRY_MAX_ATTEMPTS = 1
    for user_id in (1, 2, 3):
        with pytest.raises(ProviderError):  # the chain is exhausted
            complete(
                role="coder",
                messages=MESSAGES,
                chain=["vendor:gpt-4o"],
                run=Ledger(user_id=user_id),
            )
    vendor.requests.clear()

    with pytest.raises(ProviderError):
        complete(role="coder", messages=MESSAGES, chain=["vendor:gpt-4o"], run=Ledger(user_id=4))

    assert circuit_state("vendor").state == "open"
    assert vendor.requests == []
