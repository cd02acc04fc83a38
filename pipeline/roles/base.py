"""What every role shares: the prompt shape and the machine-readable context block.

A role's prompt is a system message (who the agent is, what it must return) and a user
message: the instruction followed by the step's context as JSON between ``<context>`` tags.
Real models read the JSON like any text; the offline model parses it to derive its answer.
"""

import json
import re
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from providers.services import schema_text

CONTEXT_RE = re.compile(r"<context>\s*(.*?)\s*</context>", re.DOTALL)

JSON_RULE = (
    "Answer with one JSON object only, no prose and no code fences, matching this JSON "
    "schema:\n{schema}"
)


@dataclass(frozen=True)
class Prompt:
    """A role's prompt template and the pydantic model its answer must fit."""

    role: str
    system: str
    instruction: str
    schema: type[BaseModel]

    def messages(self, context: dict[str, Any]) -> list[dict[str, str]]:
        """The chat messages for one step with ``context``."""
        return build_messages(
            system=self.system,
            instruction=self.instruction,
            context=context,
            schema=self.schema,
        )


def build_messages(
    *, system: str, instruction: str, context: dict[str, Any], schema: type[BaseModel]
) -> list[dict[str, str]]:
    """System + user messages; the schema is spelled out so any model can follow it."""
    rule = JSON_RULE.format(schema=schema_text(schema))
    body = json.dumps(context, indent=1, ensure_ascii=False, default=str)
    return [
        {"role": "system", "content": f"{system}\n\n{rule}"},
        {"role": "user", "content": f"{instruction}\n\n<context>\n{body}\n</context>"},
    ]


def parse_context(messages: list[dict[str, Any]]) -> dict[str, Any]:
    """The context dict of the last user message that carries one ({} when none does)."""
    for message in reversed(messages):
        if message.get("role") != "user":
            continue
        match = CONTEXT_RE.search(str(message.get("content", "")))
        if match:
            try:
                value = json.loads(match.group(1))
            except ValueError:
                return {}
            return value if isinstance(value, dict) else {}
    return {}
