"""Writes of the pipeline: the run lifecycle other apps call, and the stages tasks call.

Public: ``run_start``, ``run_cancel``, ``run_resume``, ``run_approve``, ``step_retry``,
``run_reap_stale`` (the beat reaper); ``run_generate`` (a run on top of a base run, in
``followups``) and ``run_fork`` (a run that takes over another's steps, in ``forks``).
Stage functions live in ``pipeline.services.stages``, the durable step runner in
``pipeline.services.steps``.
"""

from .followups import run_generate
from .forks import run_fork
from .run_state import RunStopped, emit, run_fail, stage_mark
from .runs import (
    RunOptions,
    run_approve,
    run_cancel,
    run_options_validate,
    run_reap_stale,
    run_resume,
    run_start,
    step_retry,
)

__all__ = [
    "RunOptions",
    "RunStopped",
    "emit",
    "run_approve",
    "run_cancel",
    "run_fail",
    "run_fork",
    "run_generate",
    "run_options_validate",
    "run_reap_stale",
    "run_resume",
    "run_start",
    "stage_mark",
    "step_retry",
]
