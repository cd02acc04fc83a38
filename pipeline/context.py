"""What each role's prompt carries, trimmed to the context budget.

A 30-task project must not resend everything to every step: a coder gets the design's
summary, the interfaces that touch its files, its own task and the modules of the tasks it
depends on; the tester its task's files; the integrator the tree's paths. When that is still
more than ``PIPELINE_CONTEXT_BUDGET_TOKENS``, file contents shrink first to their signatures
(``def``/``class`` lines), then to a note that they were omitted.
"""

import json
import re
from typing import Any

from django.conf import settings

CHARS_PER_TOKEN = 4
# Room kept for the note naming the files that did not fit.
OMITTED_NOTE_CHARS = 300
_SIGNATURE = re.compile(r"^\s*(?:async\s+def|def|class)\s+\w+.*$", re.MULTILINE)


def budget_chars() -> int:
    """The context budget in characters (about four a token)."""
    return int(settings.PIPELINE_CONTEXT_BUDGET_TOKENS) * CHARS_PER_TOKEN


def size_of(value: Any) -> int:
    """Characters ``value`` takes in a prompt."""
    return len(json.dumps(value, ensure_ascii=False, default=str))


def signatures_of(content: str) -> str:
    """Only the ``def`` and ``class`` lines of a Python file."""
    lines = _SIGNATURE.findall(content)
    return "\n".join(line.rstrip() for line in lines) or content[:200]


def trim_files(files: dict[str, str], budget: int) -> dict[str, str]:
    """``files`` made to fit ``budget`` characters (as JSON): full, then signatures, then out.

    Smaller files keep their full content first, so one huge file cannot crowd out the rest;
    files that do not fit even as signatures are left out and named under ``(omitted)``.
    """
    kept: dict[str, str] = {}
    omitted: list[str] = []
    remaining = budget - OMITTED_NOTE_CHARS
    for path in sorted(files, key=lambda p: len(files[p])):
        content = files[path]
        brief = signatures_of(content) if path.endswith(".py") else content[:200]
        for candidate in (content, f"# (trimmed to signatures)\n{brief}"):
            cost = size_of({path: candidate})
            if cost <= remaining:
                kept[path] = candidate
                remaining -= cost
                break
        else:
            omitted.append(path)
    result = {path: kept[path] for path in files if path in kept}
    if omitted:
        names = ", ".join(omitted)
        result["(omitted)"] = truncate(f"{len(omitted)} file(s): {names}", OMITTED_NOTE_CHARS - 60)
    return result


def design_brief(design: dict[str, Any], *, paths: set[str] | None = None) -> dict[str, Any]:
    """The design as one step needs it: interfaces only for ``paths`` (all when None)."""
    interfaces = design.get("interfaces") or []
    if paths is not None:
        interfaces = [item for item in interfaces if item.get("path") in paths]
    return {
        "summary": design.get("summary", ""),
        "package": design.get("package", ""),
        "tech_choices": design.get("tech_choices") or [],
        "components": [
            {"name": c.get("name"), "purpose": c.get("purpose"), "files": c.get("files")}
            for c in design.get("components") or []
        ],
        "interfaces": interfaces,
        "shared_files": design.get("shared_files") or {},
    }


def fit(context: dict[str, Any], *, files_keys: tuple[str, ...]) -> dict[str, Any]:
    """Trim the file maps named by ``files_keys`` so that ``context`` fits the budget."""
    budget = budget_chars()
    fixed = size_of({k: v for k, v in context.items() if k not in files_keys})
    room = max(budget - fixed, 0)
    share = room // max(len(files_keys), 1)
    for key in files_keys:
        files = context.get(key) or {}
        if size_of(files) > share:
            context[key] = trim_files(files, share)
    return context


def truncate(text: str, limit: int = 4000) -> str:
    """``text`` cut to ``limit`` characters, saying so."""
    return text if len(text) <= limit else f"{text[:limit]}\n[... {len(text) - limit} more]"
