"""complete(): budgets, structured output with one repair, the response cache, offline."""

import json
from decimal import Decimal

import pytest
from prometheus_client import REGISTRY
from pydantic import BaseModel

from providers.offline import answers
from providers.services import complete, schema_dict, schema_text
from providers.types import BudgetExceeded, ProviderError
from providers.vendors import build_chat_model
from tests.providers.conftest import Ledger
from tests.providers.stubs import openai_reply

MESSAGES = [
    {"role": "system", "content": "You review test results."},
    {"role": "user", "content": "3 passed, 0 failed."},
]


class Verdict(BaseModel):
    passed: bool
    reason: str


@pytest.fixture
def vendor(llm_settings, stub_server):
    """One OpenAI-compatible provider priced at $2.50 / $10 per million tokens."""
    server = stub_server(lambda _: openai_reply("fine", prompt_tokens=100, completion_tokens=20))
    llm_settings.LLM_PROVIDERS = {
        "vendor": {"kind": "openai", "base_url": server.url + "/v1", "api_key": "k"}
    }
    llm_settings.LLM_CHAINS = {"default": ["vendor:gpt-4o"]}
    return server


# --- Budget ---------------------------------------------------------------------------------


def test_a_call_that_would_exceed_the_run_budget_is_refused_and_not_sent(vendor, llm_settings):
    llm_settings.LLM_MAX_OUTPUT_TOKENS = 1000  # may cost up to $0.01 in output alone
    run = Ledger(budget="0.005")

    with pytest.raises(BudgetExceeded) as raised:
        complete(role="coder", messages=MESSAGES, run=run)

    assert vendor.requests == []
    assert raised.value.code == "budget"
    assert "not sent" in raised.value.detail
    assert "vendor:gpt-4o" in raised.value.detail
    assert run.usages == []


def test_a_call_within_the_budget_is_sent_and_its_usage_recorded_on_the_run(vendor):
    run = Ledger(budget="1.00")

    completion = complete(role="coder", messages=MESSAGES, run=run, max_tokens=100)

    assert len(vendor.requests) == 1
    assert vendor.requests[0].json["max_completion_tokens"] == 100
    assert run.usages == [completion]
    assert run.spent == (100 * Decimal("2.5") + 20 * Decimal(10)) / 1_000_000


def test_the_budget_is_checked_again_before_the_second_call_of_a_run(vendor):
    run = Ledger(budget="0.0030")
    complete(role="coder", messages=MESSAGES, run=run, max_tokens=200)  # spends $0.00045

    with pytest.raises(BudgetExceeded):
        complete(role="coder", messages=MESSAGES, run=run, max_tokens=250)

    assert len(vendor.requests) == 1


def test_price_overrides_from_settings_replace_the_built_in_table(vendor, llm_settings):
    llm_settings.LLM_PRICES = {"gpt-4o": [1, 1]}

    completion = complete(role="coder", messages=MESSAGES)

    assert completion.cost_usd == Decimal(120) / 1_000_000


# --- Structured output ----------------------------------------------------------------------


def test_an_invalid_answer_then_a_valid_one_gives_one_repair_and_the_parsed_result(vendor):
    vendor.script = [
        openai_reply('{"passed": "perhaps"}', prompt_tokens=100, completion_tokens=20),
        openai_reply(
            '{"passed": true, "reason": "all green"}', prompt_tokens=150, completion_tokens=30
        ),
    ]
    run = Ledger()

    completion = complete(role="tester", messages=MESSAGES, schema=Verdict, run=run)

    assert completion.parsed == Verdict(passed=True, reason="all green")
    assert len(vendor.requests) == 2
    repair_prompt = vendor.requests[1].json["messages"][-1]["content"]
    assert "passed" in repair_prompt and "reason" in repair_prompt
    assert vendor.requests[1].json["messages"][-2] == {
        "role": "assistant",
        "content": '{"passed": "perhaps"}',
    }
    assert len(run.usages) == 2
    assert (completion.tokens_in, completion.tokens_out) == (250, 50)


def test_two_invalid_answers_give_a_schema_provider_error(vendor):
    vendor.default = lambda _: openai_reply("I think it passed.")

    with pytest.raises(ProviderError) as raised:
        complete(role="tester", messages=MESSAGES, schema=Verdict)

    assert raised.value.code == "schema_invalid"
    assert "Verdict" in raised.value.detail
    assert len(vendor.requests) == 2


def test_json_wrapped_in_a_code_fence_is_accepted(vendor):
    vendor.default = lambda _: openai_reply('```json\n{"passed": false, "reason": "red"}\n```')

    completion = complete(role="tester", messages=MESSAGES, schema=Verdict)

    assert completion.parsed == Verdict(passed=False, reason="red")
    assert len(vendor.requests) == 1


# --- Cache ----------------------------------------------------------------------------------


def test_a_second_identical_deterministic_call_sends_no_request(vendor):
    run = Ledger()
    first = complete(role="coder", messages=MESSAGES, temperature=0, run=run)

    second = complete(role="coder", messages=MESSAGES, temperature=0, run=run)

    assert len(vendor.requests) == 1
    assert vendor.requests[0].json["temperature"] == 0
    assert (second.text, second.cached, second.cost_usd) == (first.text, True, Decimal(0))
    assert run.usages == [first]


def test_a_cached_structured_answer_is_parsed_again(vendor):
    vendor.default = lambda _: openai_reply('{"passed": true, "reason": "ok"}')
    complete(role="tester", messages=MESSAGES, schema=Verdict, temperature=0)

    second = complete(role="tester", messages=MESSAGES, schema=Verdict, temperature=0)

    assert second.cached is True
    assert second.parsed == Verdict(passed=True, reason="ok")
    assert len(vendor.requests) == 1


def test_calls_with_a_non_zero_temperature_are_not_cached(vendor):
    complete(role="coder", messages=MESSAGES, temperature=0.7)
    complete(role="coder", messages=MESSAGES, temperature=0.7)

    assert len(vendor.requests) == 2


def test_different_messages_miss_the_cache(vendor):
    complete(role="coder", messages=MESSAGES, temperature=0)
    complete(role="coder", messages=[{"role": "user", "content": "other"}], temperature=0)

    assert len(vendor.requests) == 2


# --- Metrics --------------------------------------------------------------------------------


def test_calls_tokens_and_cost_are_counted_by_provider_and_model(vendor):
    labels = {"provider": "vendor", "model": "gpt-4o"}

    def sample(name, **extra):
        return REGISTRY.get_sample_value(name, {**labels, **extra}) or 0.0

    before = (sample("llm_calls_total", outcome="ok"), sample("llm_tokens_total", direction="in"))

    complete(role="coder", messages=MESSAGES)

    assert sample("llm_calls_total", outcome="ok") == before[0] + 1
    assert sample("llm_tokens_total", direction="in") == before[1] + 100
    assert sample("llm_call_duration_seconds_count") >= 1
    assert sample("llm_cost_usd_total") > 0


# --- Offline --------------------------------------------------------------------------------


def test_with_no_provider_configured_the_offline_model_answers_labelled_offline(llm_settings):
    run = Ledger(budget="0")

    completion = complete(role="planner", messages=MESSAGES, run=run)

    assert (completion.provider, completion.model) == ("offline", "offline")
    assert completion.cost_usd == Decimal(0)
    assert completion.tokens_in > 0 and completion.tokens_out > 0
    assert run.usages == [completion]


def test_the_offline_model_receives_the_role_messages_and_json_schema(llm_settings, monkeypatch):
    seen = []
    real_answer = answers.answer

    def recording_answer(**kwargs):
        seen.append(kwargs)
        return real_answer(**kwargs)

    monkeypatch.setattr(answers, "answer", recording_answer)

    completion = complete(role="tester", messages=MESSAGES, schema=Verdict)

    assert seen[0]["role"] == "tester"
    assert seen[0]["schema"] == Verdict.model_json_schema()
    assert seen[0]["messages"] == MESSAGES
    assert isinstance(completion.parsed, Verdict)


def test_offline_latency_comes_from_settings(llm_settings):
    llm_settings.OFFLINE_LATENCY_MS = 25

    model = build_chat_model(provider="offline", model="offline", temperature=None, max_tokens=10)

    assert getattr(model, "latency_ms", None) == 25


def test_an_unknown_provider_in_a_chain_is_a_clear_error(llm_settings):
    with pytest.raises(ProviderError) as raised:
        complete(role="coder", messages=MESSAGES, chain=["nowhere:model"])

    assert raised.value.code == "unknown_provider"


# --- The schema's JSON --------------------------------------------------------------------


class Ruling(BaseModel):
    guilty: bool


def test_a_model_s_json_schema_is_built_once_however_many_calls_ask_for_it(monkeypatch):
    built = []
    original = Ruling.model_json_schema.__func__

    def counting(cls, *args, **kwargs):
        built.append(cls)
        return original(cls, *args, **kwargs)

    monkeypatch.setattr(Ruling, "model_json_schema", classmethod(counting))
    schema_text.cache_clear()
    texts = {schema_text(Ruling) for _ in range(3)}
    dicts = [schema_dict(Ruling) for _ in range(3)]

    assert built == [Ruling]
    assert texts == {json.dumps(original(Ruling), separators=(",", ":"))}
    assert dicts == [original(Ruling)] * 3


def test_a_caller_changing_its_schema_dict_does_not_change_the_next_caller_s():
    first = schema_dict(Ruling)
    first["properties"]["guilty"]["type"] = "string"

    assert schema_dict(Ruling)["properties"]["guilty"]["type"] == "boolean"
