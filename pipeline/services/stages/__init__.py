"""The stages of a run, one function per Celery task: design, orchestrate, code, test,
integrate, finalize; and an import run's fetch and baseline.

Each returns what comes next as a ``pipeline.flow.Next`` (or ``None`` when this branch
ends); the tasks hand it to ``pipeline.canvas``, which alone builds signatures (no stage
imports it). Every function is safe to run again: its steps answer from their rows.
"""

from .coding import check_files, orchestrate, task_code, task_test
from .common import STATIC_REVIEW, Next
from .design import design_architect, design_planner, plan_layers
from .dispatch import plan_claim_integration, plan_claim_ready, plan_next
from .imports import import_baseline, import_fetch
from .integration import finalize, find_conflicts, integrate

__all__ = [
    "STATIC_REVIEW",
    "Next",
    "check_files",
    "design_architect",
    "design_planner",
    "finalize",
    "find_conflicts",
    "import_baseline",
    "import_fetch",
    "integrate",
    "orchestrate",
    "plan_claim_integration",
    "plan_claim_ready",
    "plan_next",
    "plan_layers",
    "task_code",
    "task_test",
]
