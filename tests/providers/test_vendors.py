"""Each vendor's real SDK talks to a local stub of that vendor's wire protocol."""

import json
from decimal import Decimal

import pytest
from pydantic import BaseModel

from providers.services import complete
from tests.providers.stubs import (
    Reply,
    anthropic_reply,
    bedrock_reply,
    google_token_reply,
    openai_reply,
    vertex_reply,
)

MESSAGES = [
    {"role": "system", "content": "You are the coder."},
    {"role": "user", "content": "Write hello world."},
]


class Verdict(BaseModel):
    passed: bool
    reason: str


def test_openrouter_gets_a_chat_completion_with_bearer_key_and_usage_is_priced(
    llm_settings, stub_server
):
    server = stub_server(
        lambda _: openai_reply("print('hi')", prompt_tokens=12, completion_tokens=5)
    )
    llm_settings.LLM_PROVIDERS = {
        "openrouter": {
            "kind": "openai",
            "base_url": server.url + "/api/v1",
            "api_key": "sk-or-stub",
        }
    }
    llm_settings.LLM_CHAINS = {"default": ["openrouter:openai/gpt-4o-mini"]}

    completion = complete(role="coder", messages=MESSAGES)

    (received,) = server.requests
    assert received.path == "/api/v1/chat/completions"
    assert received.headers["authorization"] == "Bearer sk-or-stub"
    assert received.json["model"] == "openai/gpt-4o-mini"
    assert received.json["messages"] == [
        {"role": "system", "content": "You are the coder."},
        {"role": "user", "content": "Write hello world."},
    ]
    assert completion.text == "print('hi')"
    assert (completion.tokens_in, completion.tokens_out) == (12, 5)
    assert completion.cost_usd == (12 * Decimal("0.15") + 5 * Decimal("0.60")) / 1_000_000
    assert (completion.provider, completion.model) == ("openrouter", "openai/gpt-4o-mini")


def test_openai_compatible_schema_is_requested_as_a_json_schema_response_format(
    llm_settings, stub_server
):
    server = stub_server(lambda _: openai_reply('{"passed": true, "reason": "green"}'))
    llm_settings.LLM_PROVIDERS = {"openai": {"kind": "openai", "base_url": server.url + "/v1"}}
    llm_settings.LLM_CHAINS = {"default": ["openai:llama3"]}

    completion = complete(role="tester", messages=MESSAGES, schema=Verdict)

    response_format = server.requests[0].json["response_format"]
    assert response_format["type"] == "json_schema"
    assert response_format["json_schema"]["schema"]["properties"].keys() == {"passed", "reason"}
    assert completion.parsed == Verdict(passed=True, reason="green")


def test_azure_gets_the_deployment_path_api_version_and_api_key_header(llm_settings, stub_server):
    server = stub_server(lambda _: openai_reply("done", prompt_tokens=40, completion_tokens=10))
    llm_settings.LLM_PROVIDERS = {
        "azure": {
            "kind": "azure",
            "endpoint": server.url,
            "api_key": "azure-stub-key",
            "api_version": "2024-10-21",
        }
    }
    llm_settings.LLM_CHAINS = {"default": ["azure:my-gpt4o"]}
    llm_settings.LLM_PRICES = {"azure:my-gpt4o": [2.5, 10]}

    completion = complete(role="planner", messages=MESSAGES)

    (received,) = server.requests
    assert received.path == "/openai/deployments/my-gpt4o/chat/completions"
    assert received.query["api-version"] == ["2024-10-21"]
    assert received.headers["api-key"] == "azure-stub-key"
    assert received.json["messages"][1] == {"role": "user", "content": "Write hello world."}
    assert (completion.tokens_in, completion.tokens_out) == (40, 10)
    assert completion.cost_usd == (40 * Decimal("2.5") + 10 * Decimal("10")) / 1_000_000


def test_anthropic_gets_a_messages_request_with_its_key_and_system_prompt(
    llm_settings, stub_server
):
    server = stub_server(lambda _: anthropic_reply(text="hello", tokens=(20, 9)))
    llm_settings.LLM_PROVIDERS = {
        "anthropic": {"kind": "anthropic", "api_key": "sk-ant-stub", "base_url": server.url}
    }
    llm_settings.LLM_CHAINS = {"default": ["anthropic:claude-sonnet-4-6"]}

    completion = complete(role="architect", messages=MESSAGES)

    (received,) = server.requests
    assert received.path == "/v1/messages"
    assert received.headers["authorization"] == "Bearer sk-ant-stub"
    assert "anthropic-version" in received.headers
    assert received.json["model"] == "claude-sonnet-4-6"
    assert received.json["system"] == "You are the coder."
    assert received.json["messages"] == [{"role": "user", "content": "Write hello world."}]
    assert completion.text == "hello"
    assert (completion.tokens_in, completion.tokens_out) == (20, 9)
    assert completion.cost_usd == (20 * Decimal(3) + 9 * Decimal(15)) / 1_000_000


def test_anthropic_schema_is_requested_as_a_forced_tool_call(llm_settings, stub_server):
    server = stub_server(
        lambda _: anthropic_reply(tool=("Verdict", {"passed": False, "reason": "red"}))
    )
    llm_settings.LLM_PROVIDERS = {
        "anthropic": {"kind": "anthropic", "api_key": "sk-ant-stub", "base_url": server.url}
    }
    llm_settings.LLM_CHAINS = {"default": ["anthropic:claude-sonnet-4-6"]}

    completion = complete(role="tester", messages=MESSAGES, schema=Verdict)

    body = server.requests[0].json
    assert body["tool_choice"] == {"type": "tool", "name": "Verdict"}
    assert body["tools"][0]["input_schema"]["properties"].keys() == {"passed", "reason"}
    assert completion.parsed == Verdict(passed=False, reason="red")


@pytest.fixture
def aws_env(monkeypatch):
    """Stub keys for boto3's standard credential chain (the environment comes first)."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDSTUBEXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "stub-secret")
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    monkeypatch.delenv("AWS_PROFILE", raising=False)


@pytest.fixture
def bedrock(llm_settings, stub_server, aws_env):
    server = stub_server(lambda _: bedrock_reply("hi from bedrock", tokens=(30, 11)))
    llm_settings.LLM_PROVIDERS = {
        "bedrock": {"kind": "bedrock", "region": "us-east-1", "endpoint_url": server.url}
    }
    return server


CLAUDE_ON_BEDROCK = "anthropic.claude-3-5-sonnet-20240620-v1:0"


def test_bedrock_converse_is_signed_with_sigv4_through_the_endpoint_url(bedrock, llm_settings):
    llm_settings.LLM_CHAINS = {"default": [f"bedrock:{CLAUDE_ON_BEDROCK}"]}

    completion = complete(role="coder", messages=MESSAGES)

    (received,) = bedrock.requests
    assert received.path == "/model/anthropic.claude-3-5-sonnet-20240620-v1%3A0/converse"
    authorization = received.headers["authorization"]
    assert authorization.startswith("AWS4-HMAC-SHA256 Credential=AKIDSTUBEXAMPLE/")
    assert "/us-east-1/bedrock/aws4_request" in authorization
    assert received.json["system"] == [{"text": "You are the coder."}]
    assert received.json["messages"] == [
        {"role": "user", "content": [{"text": "Write hello world."}]}
    ]
    assert completion.text == "hi from bedrock"
    assert (completion.tokens_in, completion.tokens_out) == (30, 11)
    assert completion.cost_usd == (30 * Decimal(3) + 11 * Decimal(15)) / 1_000_000


def test_bedrock_titan_gets_the_system_prompt_inside_the_user_turn(bedrock, llm_settings):
    llm_settings.LLM_CHAINS = {"default": ["bedrock:amazon.titan-text-express-v1"]}

    completion = complete(role="coder", messages=MESSAGES)

    (received,) = bedrock.requests
    assert received.path == "/model/amazon.titan-text-express-v1/converse"
    assert not received.json.get("system")
    assert received.json["messages"] == [
        {"role": "user", "content": [{"text": "You are the coder.\n\nWrite hello world."}]}
    ]
    assert completion.cost_usd == (30 * Decimal("0.2") + 11 * Decimal("0.6")) / 1_000_000


def test_bedrock_claude_schema_is_requested_as_a_forced_tool_call(bedrock, llm_settings):
    llm_settings.LLM_CHAINS = {"default": [f"bedrock:{CLAUDE_ON_BEDROCK}"]}
    bedrock.default = lambda _: Reply(
        body={
            "output": {
                "message": {
                    "role": "assistant",
                    "content": [
                        {
                            "toolUse": {
                                "toolUseId": "t1",
                                "name": "Verdict",
                                "input": {"passed": True, "reason": "tool"},
                            }
                        }
                    ],
                }
            },
            "stopReason": "tool_use",
            "usage": {"inputTokens": 5, "outputTokens": 5, "totalTokens": 10},
            "metrics": {"latencyMs": 1},
        }
    )

    completion = complete(role="tester", messages=MESSAGES, schema=Verdict)

    tool_config = bedrock.requests[0].json["toolConfig"]
    assert tool_config["toolChoice"] == {"tool": {"name": "Verdict"}}
    assert completion.parsed == Verdict(passed=True, reason="tool")


def test_a_bedrock_throttling_answer_is_retried_by_the_router_alone(
    bedrock, llm_settings, monkeypatch
):
    from providers import router

    monkeypatch.setattr(router, "sleep", lambda _: None)
    llm_settings.LLM_CHAINS = {"default": [f"bedrock:{CLAUDE_ON_BEDROCK}"]}
    bedrock.script = [
        Reply(
            status=429,
            body={"message": "Too many requests"},
            headers={"x-amzn-ErrorType": "ThrottlingException"},
        )
    ]

    completion = complete(role="coder", messages=MESSAGES)

    assert len(bedrock.requests) == 2
    assert completion.attempts == 2


@pytest.fixture
def service_account_file(tmp_path):
    """A service-account key whose token endpoint is the stub (stub credentials)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    def write(token_uri: str) -> str:
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode()
        path = tmp_path / "service-account.json"
        path.write_text(
            json.dumps(
                {
                    "type": "service_account",
                    "project_id": "stub-project",
                    "private_key_id": "stub-key-id",
                    "private_key": pem,
                    "client_email": "aiflow@stub-project.iam.gserviceaccount.com",
                    "client_id": "1",
                    "token_uri": token_uri,
                }
            )
        )
        return str(path)

    return write


def _use_vertex(llm_settings, server, service_account_file) -> None:
    """Vertex as the only provider, at the stub's base URL, with stub credentials."""
    llm_settings.LLM_PROVIDERS = {
        "vertex": {
            "kind": "vertex",
            "project": "stub-project",
            "location": "us-central1",
            "base_url": server.url,
            "credentials_file": service_account_file(server.url + "/token"),
        }
    }
    llm_settings.LLM_CHAINS = {"default": ["vertex:gemini-2.5-flash"]}


def _vertex_responder(request):
    if request.path == "/token":
        return google_token_reply()
    return vertex_reply("hi from gemini", tokens=(17, 6))


def test_vertex_generate_content_goes_over_rest_to_the_base_url_with_stub_credentials(
    llm_settings, stub_server, service_account_file
):
    server = stub_server(_vertex_responder)
    _use_vertex(llm_settings, server, service_account_file)

    completion = complete(role="architect", messages=MESSAGES)

    (received,) = server.calls_to(":generateContent")
    assert received.path.endswith(
        "/projects/stub-project/locations/us-central1/publishers/google/models/"
        "gemini-2.5-flash:generateContent"
    )
    assert received.headers["authorization"] == "Bearer stub-access-token"
    assert received.json["contents"] == [
        {"role": "user", "parts": [{"text": "Write hello world."}]}
    ]
    assert received.json["systemInstruction"]["parts"] == [{"text": "You are the coder."}]
    assert completion.text == "hi from gemini"
    assert (completion.tokens_in, completion.tokens_out) == (17, 6)
    assert completion.cost_usd == (17 * Decimal("0.30") + 6 * Decimal("2.50")) / 1_000_000


def test_vertex_schema_is_requested_as_a_json_response_schema(
    llm_settings, stub_server, service_account_file
):
    def responder(request):
        if request.path == "/token":
            return google_token_reply()
        return vertex_reply('{"passed": true, "reason": "ok"}')

    server = stub_server(responder)
    _use_vertex(llm_settings, server, service_account_file)

    completion = complete(role="tester", messages=MESSAGES, schema=Verdict)

    (received,) = server.calls_to(":generateContent")
    config = received.json["generationConfig"]
    assert config["responseMimeType"] == "application/json"
    assert config["responseJsonSchema"]["properties"].keys() == {"passed", "reason"}
    assert completion.parsed == Verdict(passed=True, reason="ok")


def test_anthropic_overloaded_529_is_retried_once_by_the_router(
    llm_settings, stub_server, monkeypatch
):
    from providers import router

    monkeypatch.setattr(router, "sleep", lambda _: None)
    server = stub_server(lambda _: anthropic_reply(text="hello"))
    server.script = [
        Reply(
            status=529,
            body={"type": "error", "error": {"type": "overloaded_error", "message": "busy"}},
        )
    ]
    llm_settings.LLM_PROVIDERS = {
        "anthropic": {"kind": "anthropic", "api_key": "sk-ant-stub", "base_url": server.url}
    }
    llm_settings.LLM_CHAINS = {"default": ["anthropic:claude-sonnet-4-6"]}

    completion = complete(role="coder", messages=MESSAGES)

    assert len(server.requests) == 2
    assert completion.attempts == 2


def test_a_vertex_503_is_retried_by_the_router_alone(
    llm_settings, stub_server, service_account_file, monkeypatch
):
    from providers import router

    monkeypatch.setattr(router, "sleep", lambda _: None)
    failures = [
        Reply(status=503, body={"error": {"code": 503, "message": "busy", "status": "UNAVAILABLE"}})
    ]

    def responder(request):
        if request.path == "/token":
            return google_token_reply()
        if failures:
            return failures.pop()
        return vertex_reply("after a retry")

    server = stub_server(responder)
    _use_vertex(llm_settings, server, service_account_file)

    completion = complete(role="coder", messages=MESSAGES)

    assert len(server.calls_to(":generateContent")) == 2
    assert (completion.text, completion.attempts) == ("after a retry", 2)
