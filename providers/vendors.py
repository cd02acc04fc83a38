"""LangChain chat models over each vendor's own SDK, built from ``settings.LLM_PROVIDERS``.

The SDKs' own retries are switched off: the router's retries, circuit and failover are the
only ones. Structured output is asked for the vendor's native way: a JSON-schema response
format (OpenAI, Azure, Vertex), a forced tool call (Anthropic, Bedrock models that support
it), or, for models with neither, an instruction in the prompt.

Nothing here imports LangChain or a vendor's SDK when it is imported: each loads when a
model of its kind is built, and ``vendors_preload`` loads those of the configured chains
up front in the process that will call them (the llm worker, before it forks its workers).
"""

from __future__ import annotations

import functools
import importlib
import json
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from django.conf import settings

from .types import ProviderError

if TYPE_CHECKING:
    from langchain_core.language_models import BaseChatModel
    from langchain_core.messages import AIMessage, BaseMessage
    from langchain_core.runnables import Runnable

KINDS = ("openai", "azure", "anthropic", "bedrock", "vertex", "offline")
# The modules a model of each kind needs (besides LangChain's core), imported when one is
# built or preloaded.
KIND_MODULES: dict[str, tuple[str, ...]] = {
    "openai": ("langchain_openai",),
    "azure": ("langchain_openai",),
    "anthropic": ("langchain_anthropic",),
    "bedrock": ("botocore.config", "langchain_aws"),
    "vertex": ("google.auth", "langchain_google_genai"),
    "offline": ("providers.offline.model",),
}
_CORE_MODULES = ("langchain_core.messages", "langchain_core.language_models")
VERTEX_SCOPES = ["https://www.googleapis.com/auth/cloud-platform"]


def provider_options(provider: str) -> dict[str, Any]:
    """The configured options of ``provider`` (``offline`` needs none)."""
    options = settings.LLM_PROVIDERS.get(provider)
    if options is None and provider == "offline":
        return {"kind": "offline"}
    if options is None:
        raise ProviderError(
            f"LLM provider {provider!r} is not configured (configured: "
            f"{sorted(settings.LLM_PROVIDERS) or 'none'})",
            code="unknown_provider",
        )
    return options


@functools.lru_cache(maxsize=16)
def _load_vertex_credentials(path: str) -> Any:
    # One credentials object per file and process: it refreshes its access token only when
    # that expires, instead of once per call.
    if not path:
        import google.auth

        credentials, _ = google.auth.default(scopes=VERTEX_SCOPES)
        return credentials
    from google.oauth2 import service_account

    return service_account.Credentials.from_service_account_file(path, scopes=VERTEX_SCOPES)


def _vertex_credentials(options: dict[str, Any]) -> Any:
    """A service-account file's credentials, or Application Default Credentials."""
    return _load_vertex_credentials(options.get("credentials_file") or "")


def build_chat_model(
    *,
    provider: str,
    model: str,
    temperature: float | None,
    max_tokens: int,
    role: str = "",
    timeout: float | None = None,
) -> BaseChatModel:
    """A LangChain chat model for ``provider:model`` with the SDK's retries disabled."""
    options = provider_options(provider)
    kind = options["kind"]
    timeout = timeout if timeout is not None else settings.LLM_TIMEOUT_SECONDS
    common: dict[str, Any] = {"temperature": temperature} if temperature is not None else {}
    params: dict[str, Any]
    if kind == "openai":
        from langchain_openai import ChatOpenAI

        params = {
            "model": model,
            "base_url": options.get("base_url") or None,
            "api_key": options.get("api_key") or "not-needed",
            "default_headers": options.get("headers") or None,
            "max_retries": 0,
            "timeout": timeout,
            "max_tokens": max_tokens,
            **common,
        }
        return ChatOpenAI(**params)
    if kind == "azure":
        from langchain_openai import AzureChatOpenAI

        params = {
            "azure_endpoint": options["endpoint"],
            "azure_deployment": model,
            "api_version": options.get("api_version"),
            "api_key": options["api_key"],
            "max_retries": 0,
            "timeout": timeout,
            "max_tokens": max_tokens,
            **common,
        }
        return AzureChatOpenAI(**params)
    if kind == "anthropic":
        from langchain_anthropic import ChatAnthropic

        params = {
            "model": model,
            "api_key": options["api_key"],
            "base_url": options.get("base_url") or None,
            "max_retries": 0,
            "default_request_timeout": timeout,
            "max_tokens": max_tokens,
            **common,
        }
        return ChatAnthropic(**params)
    if kind == "bedrock":
        from botocore.config import Config
        from langchain_aws import ChatBedrockConverse

        params = {
            "model": model,
            "region_name": options.get("region") or None,
            "endpoint_url": options.get("endpoint_url") or None,
            "config": Config(
                retries={"total_max_attempts": 1, "mode": "standard"},
                connect_timeout=timeout,
                read_timeout=timeout,
            ),
            "max_tokens": max_tokens,
            **common,
        }
        return ChatBedrockConverse(**params)
    if kind == "vertex":
        from langchain_google_genai import ChatGoogleGenerativeAI

        params = {
            "model": model,
            "vertexai": True,
            "project": options.get("project") or None,
            "location": options.get("location") or None,
            "credentials": _vertex_credentials(options),
            "base_url": options.get("base_url") or None,
            "max_retries": 1,  # attempts, including the first: no SDK retry
            "timeout": timeout,
            "max_output_tokens": max_tokens,
            **common,
        }
        return ChatGoogleGenerativeAI(**params)
    if kind == "offline":
        from .offline.model import OfflineChatModel

        return OfflineChatModel(role=role, latency_ms=settings.OFFLINE_LATENCY_MS)
    raise ProviderError(f"LLM provider {provider!r} has unknown kind {kind!r}", code="config")


def _tool_name(schema_name: str) -> str:
    return re.sub(r"[^a-zA-Z0-9_-]", "_", schema_name)[:64] or "answer"


@dataclass
class Invocation:
    """How to ask a built model for one answer, and how to read the answer's text."""

    runnable: Runnable
    messages: list[BaseMessage]
    kwargs: dict[str, Any] = field(default_factory=dict)
    tool: str | None = None

    def run(self) -> tuple[AIMessage, str]:
        from langchain_core.messages import AIMessage

        message = self.runnable.invoke(self.messages, **self.kwargs)
        if not isinstance(message, AIMessage):
            raise ProviderError(f"unexpected model output {type(message).__name__}")
        if self.tool and message.tool_calls:
            return message, json.dumps(message.tool_calls[0]["args"])
        return message, str(message.text)


def invocation_for(
    *,
    kind: str,
    chat_model: BaseChatModel,
    messages: list[BaseMessage],
    role: str,
    schema_name: str | None,
    json_schema: dict[str, Any] | None,
) -> Invocation:
    """The request for ``chat_model``, asking for ``json_schema`` the vendor's native way."""
    from langchain_core.messages import SystemMessage

    if kind == "offline":
        return Invocation(chat_model, messages, {"role": role, "schema": json_schema})
    if kind == "bedrock" and "titan" in str(getattr(chat_model, "model_id", "")):
        messages = _fold_system_messages(messages)
    if json_schema is None or schema_name is None:
        return Invocation(chat_model, messages)
    name = _tool_name(schema_name)
    if kind in ("openai", "azure"):
        response_format = {
            "type": "json_schema",
            "json_schema": {"name": name, "schema": json_schema, "strict": False},
        }
        return Invocation(chat_model, messages, {"response_format": response_format})
    if kind == "vertex":
        return Invocation(
            chat_model,
            messages,
            {"response_mime_type": "application/json", "response_json_schema": json_schema},
        )
    tool = {
        "type": "function",
        "function": {
            "name": name,
            "description": f"Give the answer as a {schema_name} object.",
            "parameters": json_schema,
        },
    }
    tool_choice_ok = kind == "anthropic" or "tool" in (
        getattr(chat_model, "supports_tool_choice_values", None) or ()
    )
    if tool_choice_ok:
        return Invocation(chat_model.bind_tools([tool], tool_choice=name), messages, tool=name)
    instruction = (
        "Answer with one JSON object only, no prose and no code fence, valid against this "
        f"JSON Schema:\n{json.dumps(json_schema)}"
    )
    if kind == "bedrock" and "titan" in str(getattr(chat_model, "model_id", "")):
        return Invocation(
            chat_model, _fold_system_messages([*messages, SystemMessage(instruction)])
        )
    return Invocation(chat_model, [*messages, SystemMessage(instruction)])


def _fold_system_messages(messages: list[BaseMessage]) -> list[BaseMessage]:
    """Titan text models take no system prompt: it goes ahead of the first user turn."""
    from langchain_core.messages import HumanMessage, SystemMessage

    system = "\n\n".join(str(m.text) for m in messages if isinstance(m, SystemMessage))
    rest = [m for m in messages if not isinstance(m, SystemMessage)]
    if not system:
        return rest
    if rest and isinstance(rest[0], HumanMessage):
        return [HumanMessage(content=f"{system}\n\n{rest[0].text}"), *rest[1:]]
    return [HumanMessage(content=system), *rest]


def vendors_preload() -> list[str]:
    """Import LangChain and the modules of every provider kind the chains name (the offline
    model when a chain names it or none is configured); the kinds loaded.

    A process that calls models runs this before it forks its workers, so they share these
    modules instead of each importing them on its first call. A kind no chain names stays
    unloaded (its SDK loads on the first call that needs it, if any).
    """
    kinds = set()
    chains = list(settings.LLM_CHAINS.values())
    if "default" not in settings.LLM_CHAINS:  # a role without a chain asks the offline model
        chains.append(["offline:offline"])
    for chain in chains:
        for entry in chain:
            provider = entry.partition(":")[0]
            try:
                kinds.add(provider_options(provider)["kind"])
            except (ProviderError, KeyError):
                continue  # an unknown provider fails when it is called, not here
    kind_modules = [module for kind in sorted(kinds) for module in KIND_MODULES.get(kind, ())]
    for module in [*_CORE_MODULES, *kind_modules]:
        importlib.import_module(module)
    return sorted(kinds)
