"""The pipeline's Celery tasks: thin wrappers that take ids and call one stage service.

Model steps run on the ``llm`` queue, the tester and integration (which run code in the
sandbox) on ``sandbox``, bookkeeping on ``default``. All inherit ``acks_late`` and
``reject_on_worker_lost`` from the settings. ``_guarded`` turns what a stage raises into the
run's outcome: a stopped run ends the branch quietly, a busy step is looked at again later,
a provider error fails the run with its code as the reason.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from celery import Task, shared_task
from celery.exceptions import Ignore, Retry
from django.conf import settings

from common.logging import get_logger

from . import canvas
from .failures import failure_for
from .services import stages
from .services.runs import RunStopped, run_fail, run_reap_stale
from .services.steps import StepBusy

logger = get_logger(__name__)

# Where each task runs: model steps on llm, code-running steps on sandbox (the canvas sets
# the queue on every signature; a Celery task attribute ``queue`` is deprecated).
QUEUES = {
    "pipeline.design_architect": "llm",
    "pipeline.design_planner": "llm",
    "pipeline.orchestrate": "llm",
    "pipeline.coder": "llm",
    "pipeline.tester": "sandbox",
    "pipeline.layer_done": "default",
    "pipeline.integrate": "sandbox",
    "pipeline.finalize": "default",
    "pipeline.reap_stale_runs": "default",
}

# A busy step is looked at again every PIPELINE_BUSY_RETRY_SECONDS; after this many looks
# the reaper's stale-heartbeat rule has long since taken over.
BUSY_MAX_RETRIES = 1000


def _guarded(task: Task, run_id: int, body: Callable[[], stages.Next | None]) -> Any:
    try:
        following = body()
    except (Ignore, Retry):
        raise
    except RunStopped:
        return None
    except StepBusy:
        raise task.retry(
            countdown=settings.PIPELINE_BUSY_RETRY_SECONDS, max_retries=BUSY_MAX_RETRIES
        ) from None
    except Exception as exc:
        if not isinstance(getattr(exc, "code", None), str):
            logger.exception("pipeline.task_crashed", run_id=run_id, task=task.name)
        code, reason = failure_for(exc)
        run_fail(run_id=run_id, code=code, detail=reason)
        return None
    if following is None:
        return None
    sig = canvas.canvas_for(run_id, following)
    try:
        return task.replace(sig)
    finally:
        canvas.canvas_remember(run_id=run_id, sig=sig)


@shared_task(bind=True, name="pipeline.design_architect")
def design_architect(self: Task, run_id: int, round: int) -> None:  # noqa: A002
    """Design round ``round``: the architect's proposal."""
    return _guarded(self, run_id, lambda: stages.design_architect(run_id=run_id, round=round))


@shared_task(bind=True, name="pipeline.design_planner")
def design_planner(self: Task, run_id: int, round: int) -> None:  # noqa: A002
    """Design round ``round``: the planner's review; replaced by the next round or orchestrate."""
    return _guarded(self, run_id, lambda: stages.design_planner(run_id=run_id, round=round))


@shared_task(bind=True, name="pipeline.orchestrate")
def orchestrate(self: Task, run_id: int) -> None:
    """The approval gate and the orchestrator; replaced by the layers' chords."""
    return _guarded(self, run_id, lambda: stages.orchestrate(run_id=run_id))


@shared_task(bind=True, name="pipeline.coder")
def coder(self: Task, run_id: int, plan_task_id: int, attempt: int) -> None:
    """A task's coder, attempt ``attempt``."""
    return _guarded(
        self,
        run_id,
        lambda: stages.task_code(run_id=run_id, plan_task_id=plan_task_id, attempt=attempt),
    )


@shared_task(bind=True, name="pipeline.tester")
def tester(self: Task, run_id: int, plan_task_id: int, attempt: int) -> None:
    """A task's tester; a red verdict replaces it with the next coder -> tester attempt."""
    return _guarded(
        self,
        run_id,
        lambda: stages.task_test(run_id=run_id, plan_task_id=plan_task_id, attempt=attempt),
    )


@shared_task(bind=True, name="pipeline.layer_done")
def layer_done(self: Task, run_id: int, layer: int, last: bool) -> None:
    """The chord callback of a DAG layer."""
    return _guarded(self, run_id, lambda: stages.layer_done(run_id=run_id, layer=layer, last=last))


@shared_task(bind=True, name="pipeline.integrate")
def integrate(self: Task, run_id: int) -> None:
    """Merge, resolve conflicts (consulting architect and planner), run the full suite."""
    return _guarded(self, run_id, lambda: stages.integrate(run_id=run_id))


@shared_task(bind=True, name="pipeline.finalize")
def finalize(self: Task, run_id: int) -> None:
    """Store the artifacts and complete the run."""
    return _guarded(self, run_id, lambda: stages.finalize(run_id=run_id))


@shared_task(name="pipeline.reap_stale_runs")
def reap_stale_runs() -> list[int]:
    """Beat: resume the runs whose heartbeat went stale (their worker died)."""
    return run_reap_stale()
