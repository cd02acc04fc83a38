"""What the stage modules share: option lookup, stored outputs, base context."""

from __future__ import annotations

from typing import Any

from django.conf import settings

from ...flow import Next
from ...models import Run, Step

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


def normalize_files(items: list[dict[str, Any]]) -> dict[str, str]:
    """``[{"path", "content"}]`` as ``{safe path: content}`` (paths that leave the tree refused)."""
    from projects.artifacts import artifact_path_normalize

    return {artifact_path_normalize(item["path"]): item["content"] for item in items}
