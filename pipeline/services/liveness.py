"""Which worker processes are alive: a key in Redis per process, kept fresh by the process's
heartbeat thread (``pipeline.services.heartbeats``).

A step's store names the process that stored it (``Run.stored_by``), and that process then
sends what follows the step. Killed between the two, it leaves an active run with no step
running and nothing queued: the stale-heartbeat rule cannot see it (no step runs) and only the
quiet bound (``PIPELINE_QUIET_SECONDS``, minutes) would. With these keys the reaper resumes
such a run once it has been quiet past the stale bound and its storer's key is gone
(``pipeline.services.runs.run_reap_stale``).

A process that stops cleanly has sent what it had to send: it marks itself as having left,
and the runs it handed on are not resumed while their next task waits in a queue; that mark
lasts the quiet bound. Best effort: with Redis away, no process is known to be dead and the
quiet bound stays the net.
"""

from __future__ import annotations

import os
import secrets
import socket
from collections.abc import Iterable

from django.conf import settings

from common.logging import get_logger
from providers.redis_client import get_redis

logger = get_logger(__name__)

KEY_PREFIX = "aiflow:pipeline:worker:"
ALIVE = b"alive"
LEFT = b"left"

_identity: tuple[int, str] | None = None


def worker_id() -> str:
    """This process's name in ``Run.stored_by``: host, pid and a random part (a pid is reused)."""
    global _identity
    pid = os.getpid()
    if _identity is None or _identity[0] != pid:  # a forked child is a process of its own
        _identity = (pid, f"{socket.gethostname()[:60]}:{pid}:{secrets.token_hex(4)}")
    return _identity[1]


def _mark(worker: str, value: bytes, seconds: float) -> bool:
    try:
        get_redis().set(KEY_PREFIX + worker, value, px=max(int(seconds * 1000), 1))
    except Exception as exc:  # Redis away: the key lapses and the quiet bound stays the net
        logger.warning("worker.liveness_failed", error=f"{type(exc).__name__}: {exc}"[:200])
        return False
    return True


def worker_beat(worker: str) -> bool:
    """Say ``worker`` is alive for the stale bound (its heartbeat thread, every beat)."""
    return _mark(worker, ALIVE, float(settings.PIPELINE_STALE_SECONDS))


def worker_left(worker: str) -> bool:
    """Say ``worker`` stopped cleanly, its sends done: not dead, for the quiet bound."""
    return _mark(worker, LEFT, float(settings.PIPELINE_QUIET_SECONDS))


def workers_gone(workers: Iterable[str]) -> set[str]:
    """The ``workers`` whose key lapsed: they died. Empty when Redis cannot tell."""
    names = sorted({name for name in workers if name})
    if not names:
        return set()
    try:
        values = get_redis().mget([KEY_PREFIX + name for name in names])
    except Exception as exc:
        logger.warning("worker.liveness_unknown", error=f"{type(exc).__name__}: {exc}"[:200])
        return set()
    return {name for name, value in zip(names, values, strict=True) if value is None}
