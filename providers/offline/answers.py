"""What the offline model answers, per role. A labelled test double for LLMs.

``answer(role=, messages=, schema=)`` returns the model's text: JSON matching ``schema``
(a JSON Schema dict) when one is given, plain text otherwise. Roles the pipeline knows get
content derived from the prompt; any other schema gets a generic, valid filling.
"""

import json
from typing import Any


def _fill(schema: dict[str, Any], defs: dict[str, Any], hint: str) -> Any:
    if "$ref" in schema:
        return _fill(defs[schema["$ref"].split("/")[-1]], defs, hint)
    for combo in ("anyOf", "oneOf", "allOf"):
        if combo in schema:
            options = [s for s in schema[combo] if s.get("type") != "null"] or schema[combo]
            return _fill(options[0], defs, hint)
    if "default" in schema:
        return schema["default"]
    if "enum" in schema:
        return schema["enum"][0]
    kind = schema.get("type", "object")
    if kind == "object":
        props = schema.get("properties", {})
        return {name: _fill(sub, defs, name) for name, sub in props.items()}
    if kind == "array":
        return [_fill(schema.get("items", {}), defs, hint)]
    if kind == "integer":
        return 1
    if kind == "number":
        return 1.0
    if kind == "boolean":
        return True
    return f"offline {hint}"


def answer(*, role: str, messages: list[Any], schema: dict[str, Any] | None) -> str:
    """The offline model's answer for ``role`` (see module docstring)."""
    if schema is None:
        return f"[offline model] {role}: acknowledged."
    return json.dumps(_fill(schema, schema.get("$defs", {}), role))
