"""The offline provider: a deterministic local chat model, so the platform runs with no key.

It is a LangChain ``BaseChatModel`` whose answers come from ``providers.offline.answers``
(valid content for every role's schema, derived from the prompt). It is labelled provider
"offline", model "offline" wherever a model name shows, and costs nothing.
"""

from typing import Any

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult

from ..messages import message_dicts
from . import answers


def _count_tokens(text: str) -> int:
    # A plausible count without a tokenizer: about four tokens for every three words.
    return max(1, (len(text.split()) * 4 + 2) // 3)


class OfflineChatModel(BaseChatModel):
    """Deterministic answers per role and JSON schema; see ``providers.offline.answers``.

    ``role`` and ``json_schema`` may be set on the model or passed per call as the
    ``role=`` / ``schema=`` keyword arguments of ``invoke``.
    """

    role: str = ""
    json_schema: dict[str, Any] | None = None
    latency_ms: int = 0

    @property
    def _llm_type(self) -> str:
        return "offline"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {"model_name": "offline", "role": self.role}

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        role = kwargs.get("role") or self.role
        schema = kwargs.get("schema", self.json_schema)
        text = answers.answer(
            role=role,
            messages=message_dicts(messages),
            schema=schema,
            latency_ms_default=self.latency_ms,
        )
        tokens_in = sum(_count_tokens(str(message.text)) for message in messages)
        tokens_out = _count_tokens(text)
        message = AIMessage(
            content=text,
            usage_metadata={
                "input_tokens": tokens_in,
                "output_tokens": tokens_out,
                "total_tokens": tokens_in + tokens_out,
            },
            response_metadata={"model_name": "offline", "model_provider": "offline"},
        )
        return ChatResult(generations=[ChatGeneration(message=message)])
