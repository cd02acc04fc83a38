"""What the stage modules share: option lookup, stored outputs, base context."""

from __future__ import annotations

from typing import Any

from django.conf import settings

from ... import context as ctx
from ...flow import Next
from ...models import Run, Step
from ...selectors import run_last_test_report, run_tree_texts

__all__ = ["STATIC_REVIEW", "Next"]

STATIC_REVIEW = "static review"


def run_chain(run: Run) -> list[str] | None:
    return (run.options or {}).get("providers") or None


def run_option(run: Run, name: str) -> Any:
    defaults = {
        "max_design_rounds": settings.PIPELINE_MAX_DESIGN_ROUNDS,
        "max_fix_attempts": settings.PIPELINE_MAX_FIX_ATTEMPTS,
        "require_approval": settings.PIPELINE_REQUIRE_APPROVAL,
    }
    return (run.options or {}).get(name, defaults.get(name))


def step_output(run_id: int, key: str) -> dict[str, Any] | None:
    return (
        Step.objects.filter(run_id=run_id, key=key, status=Step.Status.SUCCEEDED)
        .values_list("output", flat=True)
        .first()
    )


def base_context(run: Run, step: Step, kind: str) -> dict[str, Any]:
    return {"kind": kind, "run": run.id, "step": step.key, "prompt": run.prompt}


def base_files(run: Run) -> dict[str, str]:
    """The tree a follow-up run changes: its base run's text files ({} for a fresh run)."""
    if run.base_run_id is None:
        return {}
    return run_tree_texts(run=Run(id=run.base_run_id, project_id=run.project_id))


def base_tree(run: Run) -> dict[str, Any] | None:
    """What the architect and planner of a follow-up see of its base: the tree's paths,
    public interfaces, test names and last test report, within the context budget (None
    for a fresh run)."""
    if run.base_run_id is None:
        return None
    base = Run(id=run.base_run_id, project_id=run.project_id)
    return ctx.base_tree_summary(base_files(run), last_report=run_last_test_report(run=base))


def tree_apply(
    tree: dict[str, str], *, files: dict[str, str], deleted: list[str] | tuple[str, ...] = ()
) -> dict[str, str]:
    """``tree`` with ``deleted`` paths removed and ``files`` written over it (a new dict)."""
    result = {path: content for path, content in tree.items() if path not in set(deleted)}
    result.update(files)
    return result


def normalize_paths(paths: list[str]) -> list[str]:
    """Safe relative paths, each once, in order (paths that leave the tree refused)."""
    from projects.artifacts import artifact_path_normalize

    return list(dict.fromkeys(artifact_path_normalize(path) for path in paths))


def normalize_files(items: list[dict[str, Any]]) -> dict[str, str]:
    """``[{"path", "content"}]`` as ``{safe path: content}`` (paths that leave the tree refused)."""
    from projects.artifacts import artifact_path_normalize

    return {artifact_path_normalize(item["path"]): item["content"] for item in items}
