"""Steering a run while it goes: pause and resume, and messages to a task's next coder.

**Pause** (``run_pause``) moves an active run to ``paused`` with one conditional update.
Nothing else is needed for "no new step starts": every task checks the run's status before
it works (``run_check_bounds``) and a step's claim itself requires an active run, so a step
already running finishes and stores its answer, and the work it queues next stops quietly.
The run's queued tasks are revoked once the pause commits (as for cancel); the reaper only
looks at active runs, so it leaves a paused one alone. **Resume** of a paused run
(``run_unpause``, reached through ``run_resume``) is the resume of a stalled run: unfinished
steps reset, the canvas sent again from the rows, finished steps answering from their rows;
its deadline moves on by the time it was paused, so wall time spent paused does not count.

**Messages** (``task_message_send``) are rows. The first coder step of the task prepared
after a message was sent takes it (``task_messages_take``, a conditional update), and its
prompt and stored input carry it; a takeover or retry of that step sees the same messages.
Both survive a restart of every process: nothing is kept anywhere but the rows.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from common.db import prepared_cursor
from common.errors import ApplicationError, Conflict, NotFound
from common.logging import get_logger, redact_secrets

from ..events import publish
from ..models import PlanTask, Run, Step, TaskMessage
from .run_state import run_revoke
from .runs import _run_restart

logger = get_logger(__name__)


def run_pause(*, run: Run) -> Run:
    """Pause an active run: steps in flight finish, no new one starts (409 otherwise)."""
    now = timezone.now()
    with transaction.atomic():
        updated = Run.objects.filter(id=run.id, status__in=Run.ACTIVE).update(
            status=Run.Status.PAUSED, paused_at=now
        )
        if not updated:
            raise Conflict(
                "Only a queued, designing, running or integrating run can be paused.",
                code="not_pausable",
            )
        running = list(
            Step.objects.filter(run_id=run.id, status=Step.Status.RUNNING).values_list(
                "key", flat=True
            )
        )
        publish(run_id=run.id, type="run.paused", payload={"finishing": running})
        transaction.on_commit(lambda: run_revoke(run.id))
    logger.info("run.paused", run_id=run.id, finishing=len(running))
    run.refresh_from_db()
    return run


def run_unpause(*, run: Run) -> Run:
    """Resume a paused run from its rows, its deadline moved on by the time it was paused."""
    with transaction.atomic():
        locked = Run.objects.select_for_update().filter(id=run.id, status=Run.Status.PAUSED).first()
        if locked is None:
            raise Conflict("The run is not paused.", code="not_paused")
        now = timezone.now()
        paused_for = now - (locked.paused_at or now)
        deadline = (locked.deadline_at + paused_for) if locked.deadline_at else None
        _run_restart(
            locked,
            reason="unpaused",
            deadline=deadline,
            paused_at=None,
            paused_seconds=F("paused_seconds") + paused_for.total_seconds(),
        )
    run.refresh_from_db()
    return run


# --- messages to a task's next coder attempt -------------------------------------------------


def task_message_send(*, run: Run, user: Any, key: str, text: str) -> TaskMessage:
    """Add ``text`` to the next coder attempt of the run's task ``key``.

    Refused (409) once the run finished or the task passed; ``NotFound`` for a key the plan
    does not have; 400 for an empty or long text, or past the task's message bound.
    """
    text = (text or "").strip()
    if not text:
        raise ApplicationError("Write a message.", code="invalid_message")
    limit = settings.PIPELINE_TASK_MESSAGE_MAX_CHARS
    if len(text) > limit:
        raise ApplicationError(
            f"A message may be at most {limit} characters.", code="invalid_message"
        )
    with transaction.atomic():
        locked = Run.objects.select_for_update().filter(id=run.id).first()
        if locked is None or locked.status not in Run.UNFINISHED:
            raise Conflict("The run has finished: no coder attempt follows.", code="run_finished")
        task = PlanTask.objects.filter(run_id=run.id, key=key).first()
        if task is None:
            raise NotFound(f"The plan has no task {key!r}.", code="task_not_found")
        if task.status == PlanTask.Status.SUCCEEDED:
            raise Conflict(
                f"Task {key} already passed its tests: no coder attempt follows.",
                code="task_finished",
            )
        sent = TaskMessage.objects.filter(plan_task=task).count()
        if sent >= settings.PIPELINE_TASK_MESSAGES_MAX:
            raise ApplicationError(
                f"Task {key} has been sent {settings.PIPELINE_TASK_MESSAGES_MAX} messages, "
                "the most one task may get.",
                code="too_many_messages",
            )
        # A message goes into a model's prompt: secrets a person pasted by mistake stay out.
        message = TaskMessage.objects.create(
            run_id=run.id, plan_task=task, author=user, text=redact_secrets(text)
        )
        publish(
            run_id=run.id,
            type="task.message",
            payload={"task": key, "message_id": message.pk, "text": message.text[:500]},
        )
    logger.info("task.message", run_id=run.id, task=key, message_id=message.pk)
    return message


# Take the waiting messages and read every message the step holds, in one statement: the
# second part reads the table as the statement found it, so the rows just taken come from
# the first part only.
_MESSAGES_TAKE = """
WITH taken AS (
    UPDATE pipeline_taskmessage SET step_id = %(step)s
    WHERE plan_task_id = %(task)s AND step_id IS NULL
    RETURNING id, text
)
SELECT text FROM (
    SELECT id, text FROM taken
    UNION ALL
    SELECT id, text FROM pipeline_taskmessage WHERE step_id = %(step)s
) AS held
ORDER BY id
"""


def task_messages_take(*, step: Step, plan_task_id: int) -> list[str]:
    """The messages of a coder step: those waiting for the task's next attempt become this
    step's, then every message this step holds (in order). Safe to call again for the same
    step (a takeover, a retry): it sees the same messages and any sent since."""
    with prepared_cursor() as cursor:
        cursor.execute(_MESSAGES_TAKE, {"step": step.pk, "task": plan_task_id})
        texts = [row[0] for row in cursor.fetchall()]
    if texts:
        Step.objects.filter(id=step.pk).update(input={**(step.input or {}), "messages": texts})
    return texts
