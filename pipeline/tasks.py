"""The pipeline's Celery tasks: thin wrappers that take ids and call one stage service.

Each stage returns what comes next (``pipeline.flow.Next``) and ``pipeline.canvas`` sends
it; the queues are the canvas's (``canvas.queue_for``). All tasks inherit ``acks_late`` and
``reject_on_worker_lost`` from the settings and keep no result (nothing reads one).
``_guarded`` turns what a stage raises into the run's outcome: a stopped run ends the
branch quietly, a busy step is looked at again later, a lost connection (``pipeline.transient``)
has the task tried again, and any other failure ends the run with a code and a plain reason
(``pipeline.failures``). What comes next is sent with retries of its own: it exists nowhere
else (a stage that claimed the next tasks would not claim them again).
"""

from __future__ import annotations

from collections.abc import Callable

from celery import Task, shared_task
from celery.exceptions import Ignore, Reject, Retry
from django.conf import settings

from common.logging import get_logger

from . import canvas
from .failures import failure_for
from .flow import Next
from .services import stages
from .services.run_state import RunStopped, run_fail
from .services.runs import run_reap_stale
from .services.steps import StepBusy
from .tracing import task_traced
from .transient import is_transient, retry_transient

logger = get_logger(__name__)

# A busy step is looked at again every PIPELINE_BUSY_RETRY_SECONDS; after this many looks
# the reaper's stale-heartbeat rule has long since taken over.
BUSY_MAX_RETRIES = 1000
# A task that met a lost connection is tried again this many times (backoff up to
# TRANSIENT_MAX_COUNTDOWN seconds); past that the reaper resumes the run.
TRANSIENT_MAX_RETRIES = 12
TRANSIENT_MAX_COUNTDOWN = 10.0


def _guarded(task: Task, run_id: int, body: Callable[[], Next | None]) -> None:
    body = task_traced(task_name=task.name, run_id=run_id, body=body)
    try:
        following = body()
    except (Ignore, Retry):
        raise
    except RunStopped:
        return
    except StepBusy:
        raise task.retry(
            countdown=settings.PIPELINE_BUSY_RETRY_SECONDS, max_retries=BUSY_MAX_RETRIES
        ) from None
    except Exception as exc:
        if is_transient(exc):
            _retry_later(task, run_id, exc)
            return
        if not isinstance(getattr(exc, "code", None), str):
            logger.exception("pipeline.task_crashed", run_id=run_id, task=task.name)
        code, reason = failure_for(exc)
        retry_transient(
            lambda: run_fail(run_id=run_id, code=code, detail=reason), what="run.fail", attempts=5
        )
        return
    if following is not None:
        try:
            retry_transient(
                lambda: canvas.canvas_send(run_id=run_id, step=following),
                what="canvas.send",
                attempts=12,
            )
        except Exception:
            # The reaper resumes a run whose work was lost (PIPELINE_QUIET_SECONDS).
            logger.exception("pipeline.send_failed", run_id=run_id, task=task.name)


def _retry_later(task: Task, run_id: int, exc: BaseException) -> None:
    """Try the task again after a lost connection; past the bound, leave it to the reaper."""
    retries = task.request.retries or 0
    logger.warning(
        "pipeline.task_transient_error",
        run_id=run_id,
        task=task.name,
        retries=retries,
        error=f"{type(exc).__name__}: {exc}"[:300],
    )
    if retries >= TRANSIENT_MAX_RETRIES:
        logger.error("pipeline.task_given_up", run_id=run_id, task=task.name)
        return
    countdown = min(0.5 * 2**retries, TRANSIENT_MAX_COUNTDOWN)

    def send() -> Retry:
        try:
            return task.retry(countdown=countdown, max_retries=TRANSIENT_MAX_RETRIES, throw=False)
        except Reject as rejected:  # the broker is away too: what it raised, to try again
            reason = getattr(rejected, "reason", None)
            raise reason if isinstance(reason, Exception) else rejected from None

    raise retry_transient(send, what="task.retry", attempts=12) from None


@shared_task(bind=True, name="pipeline.design_architect", ignore_result=True)
def design_architect(self: Task, run_id: int, round: int) -> None:  # noqa: A002
    """Design round ``round``: the architect's proposal."""
    _guarded(self, run_id, lambda: stages.design_architect(run_id=run_id, round=round))


@shared_task(bind=True, name="pipeline.design_planner", ignore_result=True)
def design_planner(self: Task, run_id: int, round: int) -> None:  # noqa: A002
    """Design round ``round``: the planner's review; then the next round or orchestrate."""
    _guarded(self, run_id, lambda: stages.design_planner(run_id=run_id, round=round))


@shared_task(bind=True, name="pipeline.orchestrate", ignore_result=True)
def orchestrate(self: Task, run_id: int) -> None:
    """The approval gate and the orchestrator; then the tasks that are ready."""
    _guarded(self, run_id, lambda: stages.orchestrate(run_id=run_id))


@shared_task(bind=True, name="pipeline.coder", ignore_result=True)
def coder(self: Task, run_id: int, plan_task_id: int, attempt: int) -> None:
    """A task's coder, attempt ``attempt`` (its tester follows in the chain)."""
    _guarded(
        self,
        run_id,
        lambda: stages.task_code(run_id=run_id, plan_task_id=plan_task_id, attempt=attempt),
    )


@shared_task(bind=True, name="pipeline.tester", ignore_result=True)
def tester(self: Task, run_id: int, plan_task_id: int, attempt: int) -> None:
    """A task's tester; then the next attempt (red), the newly ready tasks or integration."""
    _guarded(
        self,
        run_id,
        lambda: stages.task_test(run_id=run_id, plan_task_id=plan_task_id, attempt=attempt),
    )


@shared_task(bind=True, name="pipeline.integrate", ignore_result=True)
def integrate(self: Task, run_id: int) -> None:
    """Merge, resolve conflicts (consulting architect and planner), run the full suite."""
    _guarded(self, run_id, lambda: stages.integrate(run_id=run_id))


@shared_task(bind=True, name="pipeline.finalize", ignore_result=True)
def finalize(self: Task, run_id: int) -> None:
    """Store the artifacts and complete the run."""
    _guarded(self, run_id, lambda: stages.finalize(run_id=run_id))


@shared_task(bind=True, name="pipeline.import_fetch", ignore_result=True)
def import_fetch(self: Task, run_id: int) -> None:
    """An import run: fetch its tree (git or the upload), check it, store it as artifacts."""
    _guarded(self, run_id, lambda: stages.import_fetch(run_id=run_id))


@shared_task(bind=True, name="pipeline.import_baseline", ignore_result=True)
def import_baseline(self: Task, run_id: int) -> None:
    """An import run: the repository's own tests in the sandbox (the baseline); completes it."""
    _guarded(self, run_id, lambda: stages.import_baseline(run_id=run_id))


@shared_task(name="pipeline.reap_stale_runs", ignore_result=True)
def reap_stale_runs() -> list[int]:
    """Beat: resume the runs whose step holder died (or whose work was lost)."""
    return run_reap_stale()


# The delivery's tasks live with the rest of delivery; importing them registers them here.
from .delivery.tasks import deliver_run, resend_stale_deliveries  # noqa: E402, F401
