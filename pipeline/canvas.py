"""The run as a Celery canvas, built from the database rows alone.

::

    design round r:  architect(r) -> planner(r)      planner replaces itself with round r+1,
                                                     or with orchestrate once it approves
    orchestrate:     replaces itself with
                     chord(group(task_chain(t) for t in layer 1), layer_done(1)) -> ...
                     -> integrate -> finalize
    task_chain(t):   coder(t, 1) -> tester(t, 1); a red tester replaces itself with
                     coder(t, n+1) -> tester(t, n+1) until green or max attempts

Every signature is immutable (``si``) and carries ids only. ``canvas_dispatch`` always
starts from design round 1: steps that already succeeded answer from their rows, so a
resumed run replays its finished part for free and goes on where it stopped. The ids of
the tasks a run queued are kept in Redis so that cancel can revoke them.
"""

from __future__ import annotations

from typing import Any, cast

import redis
from celery import chain, chord, group
from celery.canvas import Signature, _chain, _chord  # type: ignore[attr-defined]
from django.conf import settings

from common.logging import get_logger

from .services.stages import Next

logger = get_logger(__name__)

TASK_IDS_KEY = "aiflow:pipeline:run:{run_id}:tasks"
TASK_IDS_TTL = 7 * 24 * 3600


def _redis() -> redis.Redis:
    return redis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=2, socket_timeout=5)


def _task_ids(sig: Any) -> list[str]:
    """Every task id a (frozen) signature will run under."""
    ids: list[str] = []
    if isinstance(sig, _chord):
        header = sig.tasks  # a group, or a list of signatures
        items = [header] if isinstance(header, Signature) else list(header)
        for item in items:
            ids.extend(_task_ids(item))
        ids.extend(_task_ids(sig.body))
    elif isinstance(sig, _chain | group):
        for item in sig.tasks:
            ids.extend(_task_ids(item))
    elif isinstance(sig, Signature):
        task_id = sig.options.get("task_id")
        if task_id:
            ids.append(task_id)
    return ids


def canvas_remember(*, run_id: int, sig: Any) -> None:
    """Keep the ids of ``sig``'s tasks, so that cancelling the run can revoke them."""
    ids = _task_ids(sig)
    if not ids:
        return
    client = _redis()
    key = TASK_IDS_KEY.format(run_id=run_id)
    client.sadd(key, *ids)
    client.expire(key, TASK_IDS_TTL)


def canvas_revoke(*, run_id: int) -> int:
    """Revoke the run's queued tasks (the ones already running stop at their next check)."""
    from config.celery import app

    client = _redis()
    key = TASK_IDS_KEY.format(run_id=run_id)
    ids = [raw.decode() for raw in cast(set[bytes], client.smembers(key))]
    if ids:
        app.control.revoke(ids)
    client.delete(key)
    logger.info("run.revoked", run_id=run_id, tasks=len(ids))
    return len(ids)


def _si(task: Any, *args: Any) -> Signature:
    """An immutable signature of ``task`` on its queue."""
    from .tasks import QUEUES

    return task.si(*args).set(queue=QUEUES[task.name])


def design_round(run_id: int, round: int) -> Signature:  # noqa: A002
    from . import tasks

    return chain(
        _si(tasks.design_architect, run_id, round), _si(tasks.design_planner, run_id, round)
    )


def task_chain(run_id: int, plan_task_id: int, attempt: int) -> Signature:
    from . import tasks

    return chain(
        _si(tasks.coder, run_id, plan_task_id, attempt),
        _si(tasks.tester, run_id, plan_task_id, attempt),
    )


def coding_canvas(run_id: int, layers: list[list[int]]) -> Signature:
    """One chord per DAG layer (its tasks in parallel), then integrate and finalize."""
    from . import tasks

    parts: list[Signature] = []
    for index, layer in enumerate(layers):
        header = group(task_chain(run_id, task_id, 1) for task_id in layer)
        last = index == len(layers) - 1
        parts.append(chord(header, _si(tasks.layer_done, run_id, index, last)))
    parts.append(_si(tasks.integrate, run_id))
    parts.append(_si(tasks.finalize, run_id))
    return chain(*parts)


def canvas_for(run_id: int, step: Next) -> Signature:
    """The signature that carries out ``step``."""
    from . import tasks

    if step.kind == "design":
        return design_round(run_id, step.args[0])
    if step.kind == "orchestrate":
        return _si(tasks.orchestrate, run_id)
    if step.kind == "layers":
        return coding_canvas(run_id, step.args[0])
    if step.kind == "fix":
        plan_task_id, attempt = step.args
        return task_chain(run_id, plan_task_id, attempt)
    raise ValueError(f"unknown canvas step {step.kind!r}")


def canvas_dispatch(*, run_id: int) -> None:
    """Queue the run's canvas from the start (finished steps answer from their rows)."""
    sig = design_round(run_id, 1)
    sig.freeze()
    canvas_remember(run_id=run_id, sig=sig)
    sig.apply_async()
    logger.info("run.dispatched", run_id=run_id)
