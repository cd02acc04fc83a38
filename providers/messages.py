"""Chat messages as plain dicts, without loading LangChain.

LangChain (``langchain_core`` with ``langsmith``, some 30 MB and 0.4 s to import) is loaded
only in a process that calls a model: the llm worker preloads it
(``providers.vendors.vendors_preload``); the web tier, the sandbox worker, beat and Flower
never need it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from langchain_core.messages import BaseMessage

_ROLES = {"system": "system", "human": "user", "ai": "assistant"}


def message_dicts(messages: list[BaseMessage]) -> list[dict[str, str]]:
    """``[{"role": "system"|"user"|"assistant", "content": str}]`` for ``messages``."""
    return [
        {"role": _ROLES.get(message.type, message.type), "content": str(message.text)}
        for message in messages
    ]


def message_classes() -> dict[str, Any]:
    """The LangChain message class of each role name a caller may use."""
    from langchain_core.messages import AIMessage, HumanMessage, SystemMessage

    return {
        "system": SystemMessage,
        "user": HumanMessage,
        "human": HumanMessage,
        "assistant": AIMessage,
        "ai": AIMessage,
    }
