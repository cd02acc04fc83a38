"""Trees the offline model (a labelled test double) builds, asked the way the pipeline asks.

The prompts are built by the roles exactly as the stages build them; the trees are merged
the way integration merges task files (written files replace, deleted files go).
"""

from typing import Any

from pipeline import context as ctx
from pipeline.roles import ARCHITECT, CODER, PLANNER, Prompt
from providers.offline import answers


def ask(prompt: Prompt, context: dict[str, Any]) -> dict[str, Any]:
    """The offline model's validated answer to ``prompt`` with ``context``."""
    text = answers.answer(
        role=prompt.role,
        messages=prompt.messages(context),
        schema=prompt.schema.model_json_schema(),
    )
    return prompt.schema.model_validate_json(text).model_dump(mode="json")


def plan(prompt: str, extra: dict[str, Any]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The approved design and the planner's tasks for ``prompt``."""
    design = ask(ARCHITECT, {"kind": "design", "prompt": prompt, "round": 1, **extra})
    review = ask(PLANNER, {"kind": "plan_review", "prompt": prompt, "design": design, **extra})
    assert review["approved"]
    return design, review["tasks"]


def build(
    prompt: str, base: dict[str, str] | None = None
) -> tuple[dict[str, str], dict[str, dict[str, Any]]]:
    """The tree a run of ``prompt`` ends with (on top of ``base`` for a follow-up), and each
    task's coder answer."""
    extra = {"base_tree": ctx.base_tree_summary(base)} if base is not None else {}
    design, tasks = plan(prompt, extra)
    tree = dict(base or {})
    answered = {}
    for task in tasks:
        context: dict[str, Any] = {"kind": "code", "prompt": prompt, "task": task, "design": design}
        if base is not None:
            context["base_files"] = {p: base[p] for p in task["files"] if p in base}
        files = ask(CODER, context)
        answered[task["key"]] = files
        tree.update({item["path"]: item["content"] for item in files["files"]})
        for path in files["deleted"]:
            del tree[path]
    return tree, answered
