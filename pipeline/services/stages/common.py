"""What the stage modules share: option lookup, stored outputs, base context."""

from __future__ import annotations

from typing import Any

from django.conf import settings

from common.db import PrecompiledQuery, PrecompiledRows

from ... import context as ctx
from ...flow import Next
from ...models import PlanTask, Run, RunImport, Step
from ...selectors import run_import_origin, run_last_test_report, run_tree_texts

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


# Compiled once per process (read by several steps of every run).
_step_output = PrecompiledRows(
    lambda run_id, key: Step.objects.filter(
        run_id=run_id, key=key, status=Step.Status.SUCCEEDED
    ).values_list("output")[:1]
)


_plan_tasks = PrecompiledQuery(
    lambda run_id: PlanTask.objects.filter(run_id=run_id).order_by("layer", "id")
)


def plan_tasks(run_id: int) -> list[PlanTask]:
    """The run's plan tasks, layer by layer (SQL compiled once per process)."""
    return _plan_tasks.all(run_id)


def step_output(run_id: int, key: str) -> dict[str, Any] | None:
    """The output of the run's step ``key`` if it succeeded (a run has one step per key)."""
    found = _step_output.first(run_id, key)
    return found[0] if found is not None else None


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


def base_import(run: Run) -> RunImport | None:
    """The import the run's base tree descends from (None for a fresh run, or a chain of runs
    that started from nothing)."""
    if run.base_run_id is None:
        return None
    return run_import_origin(run=Run(id=run.base_run_id))


def base_binary(run: Run, *, deleted: list[str] | tuple[str, ...] = ()) -> dict[str, bytes]:
    """The base tree's binary files (path -> bytes), less ``deleted``: the sandbox gets them
    (a test may read one), a model never does."""
    from projects.artifacts import artifact_read
    from projects.models import Artifact

    if run.base_run_id is None:
        return {}
    gone = set(deleted)
    return {
        artifact.path: artifact_read(artifact=artifact)
        for artifact in Artifact.objects.filter(run_id=run.base_run_id, binary=True)
        if artifact.path not in gone
    }


def base_binary_paths(run: Run) -> set[str]:
    """The paths of the base tree's binary files (never edited or rewritten by a model)."""
    from projects.models import Artifact

    if run.base_run_id is None:
        return set()
    rows = Artifact.objects.filter(run_id=run.base_run_id, binary=True)
    return set(rows.values_list("path", flat=True))


def repository_context(run: Run) -> dict[str, Any] | None:
    """What the architect and planner of a run on an imported repository see of it, instead of
    the follow-up summary: the repository map (``pipeline.repomap``) of the base tree, where
    the repository came from and its baseline; None when the base descends from no import."""
    from projects.artifacts import artifact_read
    from projects.models import Artifact

    from ...repomap import MapFile, repo_map
    from ...selectors import baseline_tests

    origin = base_import(run)
    if origin is None or run.base_run_id is None:
        return None
    files = []
    for artifact in Artifact.objects.filter(run_id=run.base_run_id).order_by("path"):
        text = None
        if not artifact.binary:
            try:
                text = artifact_read(artifact=artifact).decode("utf-8")
            except UnicodeDecodeError:
                text = None
        files.append(MapFile(path=artifact.path, size=artifact.size, text=text))
    failing = [
        test["id"]
        for test in baseline_tests(run_id=origin.run_id)
        if test["outcome"] in ("failed", "error")
    ]
    return {
        "repo_map": repo_map(files),
        "repository": {
            "origin": "import",
            "source": origin.url or origin.archive_name,
            "commit": origin.commit,
            "baseline": {
                "status": origin.baseline_status,
                "command": origin.baseline_command,
                "counts": origin.baseline_counts or {},
                "failing_before": failing[:20],
            },
        },
    }


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
