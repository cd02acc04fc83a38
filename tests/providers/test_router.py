"""Retries, circuit breaker and failover across a role's chain, against stub vendors."""

import pytest

from providers import router
from providers.circuit import circuit_state
from providers.services import complete
from providers.types import ProviderError
from tests.providers.stubs import openai_error, openai_reply

MESSAGES = [{"role": "user", "content": "Plan a todo app."}]


@pytest.fixture
def pair(llm_settings, stub_server):
    """A primary and a secondary OpenAI-compatible provider, chained in that order."""
    primary = stub_server(lambda _: openai_reply("from primary"))
    secondary = stub_server(lambda _: openai_reply("from secondary"))
    llm_settings.LLM_PROVIDERS = {
        "primary": {"kind": "openai", "base_url": primary.url + "/v1", "api_key": "k1"},
        "secondary": {"kind": "openai", "base_url": secondary.url + "/v1", "api_key": "k2"},
    }
    llm_settings.LLM_CHAINS = {"default": ["primary:model-a", "secondary:model-b"]}
    return primary, secondary


@pytest.fixture
def delays(monkeypatch):
    """The router's waits, recorded instead of slept."""
    recorded: list[float] = []
    monkeypatch.setattr(router, "sleep", recorded.append)
    return recorded


def test_a_primary_answering_503_three_times_opens_its_circuit_and_fails_over(pair, ledger, delays):
    primary, secondary = pair
    primary.default = lambda _: openai_error(503)

    completion = complete(role="planner", messages=MESSAGES, run=ledger)

    assert len(primary.requests) == 3
    assert circuit_state("primary").state == "open"
    assert (completion.provider, completion.text) == ("secondary", "from secondary")
    assert ledger.failovers == [
        {
            "role": "planner",
            "from": "primary:model-a",
            "to": "secondary:model-b",
            "reason": "http_503",
            "status": 503,
            "transient": True,
            "detail": ledger.failovers[0]["detail"],
        }
    ]
    assert completion.failovers == ledger.failovers


def test_an_open_circuit_sends_calls_straight_to_the_secondary(pair, ledger, delays):
    primary, secondary = pair
    primary.default = lambda _: openai_error(503)
    complete(role="planner", messages=MESSAGES)

    completion = complete(role="planner", messages=MESSAGES, run=ledger)

    assert len(primary.requests) == 3
    assert len(secondary.requests) == 2
    assert completion.provider == "secondary"
    assert ledger.failovers[0]["reason"] == "circuit_open"


def test_after_the_cool_down_the_primary_is_tried_again_and_its_circuit_closes(
    pair, llm_settings, delays
):
    primary, _ = pair
    primary.default = lambda _: openai_error(503)
    complete(role="planner", messages=MESSAGES)
    primary.default = lambda _: openai_reply("primary is back")
    llm_settings.LLM_CIRCUIT_COOLDOWN_SECONDS = 0  # the cool-down has passed

    completion = complete(role="planner", messages=MESSAGES)

    assert len(primary.requests) == 4
    assert (completion.provider, completion.text) == ("primary", "primary is back")
    assert circuit_state("primary").state == "closed"


def test_a_failed_half_open_probe_opens_the_circuit_again(pair, llm_settings, delays):
    primary, secondary = pair
    primary.default = lambda _: openai_error(503)
    complete(role="planner", messages=MESSAGES)
    llm_settings.LLM_CIRCUIT_COOLDOWN_SECONDS = 0

    completion = complete(role="planner", messages=MESSAGES)

    assert len(primary.requests) == 4  # one probe, no retries on a re-opened circuit
    assert completion.provider == "secondary"
    assert circuit_state("primary").failures == 4


def test_a_429_retry_after_is_waited_before_the_retry(pair, delays):
    primary, secondary = pair
    primary.script = [openai_error(429, {"Retry-After": "2"})]

    completion = complete(role="coder", messages=MESSAGES)

    assert delays == [2.0]
    assert len(primary.requests) == 2
    assert (completion.provider, completion.attempts) == ("primary", 2)
    assert secondary.requests == []


def test_a_retry_after_longer_than_allowed_fails_over_instead_of_waiting(
    pair, llm_settings, delays
):
    primary, secondary = pair
    llm_settings.LLM_RETRY_AFTER_MAX_SECONDS = 5
    primary.script = [openai_error(429, {"Retry-After": "120"})]

    completion = complete(role="coder", messages=MESSAGES)

    assert delays == []
    assert len(primary.requests) == 1
    assert completion.provider == "secondary"


def test_transient_errors_are_retried_with_growing_jittered_backoff(pair, llm_settings, delays):
    primary, _ = pair
    llm_settings.LLM_RETRY_BACKOFF_SECONDS = 1.0
    llm_settings.LLM_RETRY_BACKOFF_MAX_SECONDS = 10.0
    llm_settings.LLM_CIRCUIT_FAILURE_THRESHOLD = 5
    primary.script = [openai_error(502), openai_error(500)]

    completion = complete(role="coder", messages=MESSAGES)

    assert completion.provider == "primary"
    assert completion.attempts == 3
    assert 0.5 <= delays[0] <= 1.0
    assert 1.0 <= delays[1] <= 2.0


def test_a_401_fails_over_at_once_without_retry(pair, ledger, delays):
    primary, secondary = pair
    primary.default = lambda _: openai_error(401)

    completion = complete(role="coder", messages=MESSAGES, run=ledger)

    assert len(primary.requests) == 1
    assert delays == []
    assert completion.provider == "secondary"
    assert ledger.failovers[0]["reason"] == "http_401"


def test_an_invalid_request_fails_over_without_retry_or_circuit_failure(pair, delays):
    primary, _ = pair
    primary.default = lambda _: openai_error(400)

    completion = complete(role="coder", messages=MESSAGES)

    assert len(primary.requests) == 1
    assert completion.provider == "secondary"
    assert circuit_state("primary").failures == 0


def test_connection_errors_are_retried_then_fail_over(pair, llm_settings, stub_server, delays):
    dead = stub_server()
    dead_url = dead.url
    dead.close()
    llm_settings.LLM_PROVIDERS["primary"]["base_url"] = dead_url + "/v1"

    completion = complete(role="coder", messages=MESSAGES)

    assert len(delays) == 2
    assert completion.provider == "secondary"


def test_when_every_model_fails_the_error_names_each_of_them(pair, delays):
    primary, secondary = pair
    primary.default = lambda _: openai_error(401)
    secondary.default = lambda _: openai_error(403)

    with pytest.raises(ProviderError) as raised:
        complete(role="coder", messages=MESSAGES)

    assert raised.value.code == "provider_failed"
    assert "primary:model-a" in raised.value.detail
    assert "secondary:model-b" in raised.value.detail


def test_a_run_option_chain_overrides_the_roles_chain(pair):
    primary, secondary = pair

    completion = complete(role="coder", messages=MESSAGES, chain=["secondary:model-b"])

    assert completion.provider == "secondary"
    assert primary.requests == []


def test_a_role_uses_its_own_chain_before_the_default(pair, llm_settings):
    primary, secondary = pair
    llm_settings.LLM_CHAINS = {"default": ["primary:model-a"], "tester": ["secondary:model-b"]}

    completion = complete(role="tester", messages=MESSAGES)

    assert (completion.provider, completion.model) == ("secondary", "model-b")
    assert secondary.requests[0].json["model"] == "model-b"


def test_a_timed_out_call_is_retried(pair, llm_settings, delays):
    import time as real_time

    primary, secondary = pair
    llm_settings.LLM_TIMEOUT_SECONDS = 0.2
    slow_once = [True]

    def slow_then_quick(_):
        if slow_once:
            slow_once.pop()
            real_time.sleep(1.0)
        return openai_reply("in time")

    primary.default = slow_then_quick

    completion = complete(role="coder", messages=MESSAGES)

    assert len(primary.requests) == 2
    assert (completion.provider, completion.text, completion.attempts) == ("primary", "in time", 2)
    assert secondary.requests == []


def test_while_another_worker_probes_a_half_open_circuit_calls_go_to_the_secondary(
    pair, llm_settings, delays
):
    from providers.circuit import circuit_allows

    primary, _ = pair
    primary.default = lambda _: openai_error(503)
    complete(role="planner", messages=MESSAGES)
    llm_settings.LLM_CIRCUIT_COOLDOWN_SECONDS = 0
    assert circuit_allows("primary") is True  # another worker takes the single probe

    completion = complete(role="planner", messages=MESSAGES)

    assert len(primary.requests) == 3
    assert completion.provider == "secondary"


def test_a_call_reads_its_two_circuits_in_one_round_trip(pair, monkeypatch):
    from providers import circuit

    real = circuit.get_redis()
    pipelines, single_reads = [], []

    class Client:
        """The real client, noting how circuits are read."""

        def __getattr__(self, name):
            return getattr(real, name)

        def pipeline(self, **kwargs):
            pipelines.append(kwargs)
            return real.pipeline(**kwargs)

        def hgetall(self, key):
            single_reads.append(key)
            return real.hgetall(key)

    monkeypatch.setattr(circuit, "get_redis", Client)

    completion = complete(role="planner", messages=MESSAGES)

    assert completion.provider == "primary"
    assert (len(pipelines), single_reads) == (1, [])


def test_a_call_that_worked_closes_its_circuits_and_notes_its_stats_in_one_round_trip(
    pair, llm_settings, delays, monkeypatch
):
    from providers.stats import stats_for

    primary, _ = pair
    primary.default = lambda _: openai_error(503)
    complete(role="planner", messages=MESSAGES)  # three failures: the circuit opens
    primary.default = lambda _: openai_reply("primary is back")
    llm_settings.LLM_CIRCUIT_COOLDOWN_SECONDS = 0
    real = router.get_redis()
    executed: list[int] = []

    class Client:
        """The real client, noting the pipelines the router runs after a call."""

        def __getattr__(self, name):
            return getattr(real, name)

        def pipeline(self, **kwargs):
            pipe = real.pipeline(**kwargs)
            execute = pipe.execute
            pipe.execute = lambda: executed.append(len(pipe.command_stack)) or execute()
            return pipe

    monkeypatch.setattr(router, "get_redis", Client)

    complete(role="planner", messages=MESSAGES)

    assert len(executed) == 1  # the circuits' delete and the stats' writes together
    assert circuit_state("primary").state == "closed"
    stats = stats_for(provider="primary", model="model-a")
    assert (stats["calls_total"], stats["errors_total"]) == (4, 3)
