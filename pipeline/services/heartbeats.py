"""The heartbeat of the steps a process holds: one thread per process, two statements a beat.

A step whose heartbeat goes stale (``PIPELINE_STALE_SECONDS``) is taken over by another
worker (``pipeline.services.steps``) or failed by the reaper. The same thread keeps the
process's liveness key fresh (``pipeline.services.liveness``) from the first step it holds
until it ends, held steps or not: the runs whose last step it stored are resumed once that
key lapses.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from django.conf import settings
from django.db import connections
from django.utils import timezone

from common.logging import get_logger

from ..models import Run, Step
from .liveness import worker_beat, worker_id, worker_left

logger = get_logger(__name__)


class _Heartbeats:
    """One thread per process touches the heartbeat of every step the process holds.

    Every PIPELINE_HEARTBEAT_SECONDS it updates all held steps and their runs in two
    statements, borrowing a connection only for that moment, whatever the number of
    steps in flight (hundreds of model calls cost two queries a beat, not hundreds). It
    runs beside the model calls, so a step in a call of any length stays fresh.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._held: dict[int, int] = {}  # step id -> run id
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._pid = 0

    def add(self, step_id: int, run_id: int) -> None:
        with self._lock:
            self._held[step_id] = run_id
            self._ensure_thread()
        self._wake.set()  # the interval may have changed

    def _ensure_thread(self) -> None:
        """Start this process's thread unless it runs (called with the lock held)."""
        if self._thread is None or not self._thread.is_alive() or self._pid != os.getpid():
            self._pid = os.getpid()  # a forked child needs its own thread
            self._thread = threading.Thread(
                target=self._loop, args=(worker_id(),), name="pipeline-heartbeat", daemon=True
            )
            self._thread.start()

    def storer(self) -> str:
        """This process's worker id; its thread, and with it its liveness key, run from now on."""
        with self._lock:
            self._ensure_thread()
        return worker_id()

    def leave(self) -> None:
        """Mark this process as stopped cleanly, if it ever kept its liveness key."""
        with self._lock:
            beating = self._thread is not None and self._pid == os.getpid()
        if beating:
            worker_left(worker_id())

    def remove(self, step_id: int) -> None:
        with self._lock:
            self._held.pop(step_id, None)

    def _loop(self, worker: str) -> None:
        worker_beat(worker)
        due = time.monotonic() + float(settings.PIPELINE_HEARTBEAT_SECONDS)
        while True:
            interval = float(settings.PIPELINE_HEARTBEAT_SECONDS)
            due = min(due, time.monotonic() + interval)
            if self._wake.wait(max(due - time.monotonic(), 0)):
                self._wake.clear()
                continue
            due = time.monotonic() + interval
            worker_beat(worker)
            with self._lock:
                held = dict(self._held)
            if held:
                self._beat(held)

    @staticmethod
    def _beat(held: dict[int, int]) -> None:
        try:
            now = timezone.now()
            Step.objects.filter(id__in=list(held), status=Step.Status.RUNNING).update(
                heartbeat_at=now
            )
            Run.objects.filter(id__in=set(held.values())).update(heartbeat_at=now)
        except Exception:
            logger.warning("step.heartbeat_failed", steps=len(held), exc_info=True)
        finally:
            connections.close_all()  # this thread's connections only


_heartbeats = _Heartbeats()


def storer() -> str:
    """The id a step's store names its run's storer by (``Run.stored_by``): this process,
    whose liveness key its heartbeat thread keeps fresh while it lives."""
    return _heartbeats.storer()


def worker_stopped() -> None:
    """A worker process stopping cleanly: its sends are done (``liveness.worker_left``)."""
    _heartbeats.leave()


@contextmanager
def heartbeat(*, step_id: int, run_id: int) -> Iterator[None]:
    """Keep the step's and its run's heartbeat fresh meanwhile (see ``_Heartbeats``)."""
    _heartbeats.add(step_id, run_id)
    try:
        yield
    finally:
        _heartbeats.remove(step_id)
