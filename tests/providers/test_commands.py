"""python manage.py providers check: a one-token request per provider, printed as a table."""

from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from tests.providers.stubs import anthropic_reply, openai_error, openai_reply


def test_check_sends_one_token_to_each_provider_and_prints_a_table(llm_settings, stub_server):
    openai = stub_server(lambda _: openai_reply("ok", prompt_tokens=9, completion_tokens=1))
    anthropic = stub_server(lambda _: anthropic_reply(text="ok", tokens=(8, 1)))
    llm_settings.LLM_PROVIDERS = {
        "openrouter": {"kind": "openai", "base_url": openai.url + "/v1", "api_key": "k"},
        "anthropic": {"kind": "anthropic", "api_key": "k", "base_url": anthropic.url},
    }
    llm_settings.LLM_CHAINS = {"default": ["openrouter:openai/gpt-4o-mini", "anthropic:claude-x"]}
    out = StringIO()

    call_command("providers", "check", stdout=out)

    assert openai.requests[0].json["max_completion_tokens"] == 1
    assert anthropic.requests[0].json["max_tokens"] == 1
    lines = out.getvalue().splitlines()
    assert lines[0].split() == ["PROVIDER", "MODEL", "STATUS", "LATENCY", "DETAIL"]
    assert lines[1].split()[:3] == ["openrouter", "openai/gpt-4o-mini", "ok"]
    assert lines[2].split()[:3] == ["anthropic", "claude-x", "ok"]


def test_check_reports_a_failing_provider_and_exits_non_zero(llm_settings, stub_server):
    server = stub_server(lambda _: openai_error(401))
    llm_settings.LLM_PROVIDERS = {
        "openai": {"kind": "openai", "base_url": server.url + "/v1", "api_key": "wrong"}
    }
    llm_settings.LLM_CHAINS = {"default": ["openai:gpt-4o"]}
    out = StringIO()

    with pytest.raises(CommandError, match="1 of 1 provider checks failed"):
        call_command("providers", "check", stdout=out)

    assert "FAIL 401" in out.getvalue()
    assert len(server.requests) == 1
