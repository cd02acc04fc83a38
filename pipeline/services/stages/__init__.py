"""The stages of a run, one function per canvas task: design, orchestrate, code, test,
integrate, finalize.

Each returns what the canvas should do next as a ``Next`` (or ``None`` when this branch of
the canvas ends), so the Celery tasks stay thin and ``pipeline.canvas`` alone builds
signatures. Every function is safe to run again: its steps answer from their rows.
"""

from .coding import check_files, layer_done, orchestrate, task_code, task_test
from .common import STATIC_REVIEW, Next
from .design import design_architect, design_planner, plan_layers
from .integration import finalize, find_conflicts, integrate

__all__ = [
    "STATIC_REVIEW",
    "Next",
    "check_files",
    "design_architect",
    "design_planner",
    "finalize",
    "find_conflicts",
    "integrate",
    "layer_done",
    "orchestrate",
    "plan_layers",
    "task_code",
    "task_test",
]
