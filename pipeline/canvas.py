"""The run as Celery work: turns a stage's ``Next`` into signatures and sends them.

::

    design round r:  architect(r) -> planner(r)      the planner's Next: round r+1, or
                                                     orchestrate once it approves
    orchestrate:     Next = the tasks whose dependencies are green (claimed in the
                     database), sent as a group of task chains
    task chain(t):   coder(t, n) -> tester(t, n); a red tester's Next is the chain of
                     attempt n+1; a green one's Next is the tasks that just became ready
                     (claimed once however many finish together), or integration when
                     it was the last
    integrate -> finalize

An import run is one chain: fetch (git or the uploaded archive, stored as artifacts), then
the baseline (the repository's own tests), both on the sandbox worker.

No layer barrier: a task starts as soon as its own dependencies are done. Signatures are
built by task name (this module imports neither the tasks nor the stages), are immutable
and carry ids only. The ids of the tasks a run queued are kept in Redis so that cancel can
revoke them; every task also checks the run's status before it does anything.
"""

from __future__ import annotations

from typing import Any, cast

from celery import chain, group, signature
from celery.canvas import Signature, _chain  # type: ignore[attr-defined]
from django.conf import settings

from common.logging import get_logger
from providers.redis_client import get_redis

from .flow import Next
from .tracing import run_context

logger = get_logger(__name__)

TASK_IDS_KEY = "aiflow:pipeline:run:{run_id}:tasks"
TASK_IDS_TTL = 7 * 24 * 3600

# Model steps on llm, bookkeeping on default; the tester and integration run code in the
# sandbox (see ``queue_for``).
QUEUES = {
    "pipeline.design_architect": "llm",
    "pipeline.design_planner": "llm",
    "pipeline.orchestrate": "llm",
    "pipeline.coder": "llm",
    "pipeline.tester": "sandbox",
    "pipeline.integrate": "sandbox",
    "pipeline.finalize": "default",
    "pipeline.import_fetch": "sandbox",
    "pipeline.import_baseline": "sandbox",
    "pipeline.reap_stale_runs": "default",
}


def queue_for(name: str) -> str:
    """The queue of task ``name``; with the sandbox off nothing runs code, so no sandbox."""
    queue = QUEUES[name]
    if queue == "sandbox" and not settings.SANDBOX_TESTS_ENABLED:
        return "llm"
    return queue


def _si(name: str, *args: Any) -> Signature:
    """An immutable signature of task ``name`` on its queue."""
    return signature(name, args=args, immutable=True, queue=queue_for(name))


def task_chain(run_id: int, plan_task_id: int, attempt: int) -> Signature:
    """A plan task's attempt: its coder, then its tester."""
    return chain(
        _si("pipeline.coder", run_id, plan_task_id, attempt),
        _si("pipeline.tester", run_id, plan_task_id, attempt),
    )


def canvas_for(run_id: int, step: Next) -> Signature:
    """The signature that carries out ``step``."""
    if step.kind == "design":
        return chain(
            _si("pipeline.design_architect", run_id, step.args[0]),
            _si("pipeline.design_planner", run_id, step.args[0]),
        )
    if step.kind == "orchestrate":
        return _si("pipeline.orchestrate", run_id)
    if step.kind == "tasks":
        chains = [task_chain(run_id, task_id, attempt) for task_id, attempt in step.args]
        return chains[0] if len(chains) == 1 else group(chains)
    if step.kind == "integrate":
        return chain(_si("pipeline.integrate", run_id), _si("pipeline.finalize", run_id))
    if step.kind == "import":
        return chain(_si("pipeline.import_fetch", run_id), _si("pipeline.import_baseline", run_id))
    raise ValueError(f"unknown canvas step {step.kind!r}")


def _task_ids(sig: Any) -> list[str]:
    """Every task id a frozen signature will run under."""
    if isinstance(sig, _chain | group):
        return [task_id for item in sig.tasks for task_id in _task_ids(item)]
    task_id = sig.options.get("task_id")
    return [task_id] if task_id else []


def canvas_remember(*, run_id: int, sig: Any) -> None:
    """Keep the ids of ``sig``'s tasks, so that cancelling the run can revoke them."""
    ids = _task_ids(sig)
    if not ids:
        return
    key = TASK_IDS_KEY.format(run_id=run_id)
    pipe = get_redis().pipeline(transaction=False)
    pipe.sadd(key, *ids)
    pipe.expire(key, TASK_IDS_TTL)
    pipe.execute()


def canvas_revoke(*, run_id: int) -> int:
    """Revoke the run's queued tasks (the ones already running stop at their next check)."""
    from config.celery import app

    client = get_redis()
    key = TASK_IDS_KEY.format(run_id=run_id)
    ids = [raw.decode() for raw in cast(set[bytes], client.smembers(key))]
    if ids:
        app.control.revoke(ids)
    client.delete(key)
    logger.info("run.revoked", run_id=run_id, tasks=len(ids))
    return len(ids)


def canvas_send(*, run_id: int, step: Next) -> None:
    """Send the work of ``step`` (remembering its task ids for cancel)."""
    sig = canvas_for(run_id, step)
    sig.freeze()
    canvas_remember(run_id=run_id, sig=sig)
    with run_context(run_id):  # the messages carry the run's trace, whoever sends them
        sig.apply_async()


def canvas_dispatch(*, run_id: int, start: Next | None = None) -> None:
    """Queue the run from ``start`` (design round 1 by default; finished steps replay)."""
    canvas_send(run_id=run_id, step=start or Next.design(1))
    logger.info("run.dispatched", run_id=run_id)
