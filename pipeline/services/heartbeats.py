"""The heartbeat of the steps a process holds: one thread per process, two statements a beat.

A step whose heartbeat goes stale (``PIPELINE_STALE_SECONDS``) is taken over by another
worker (``pipeline.services.steps``) or failed by the reaper.
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
            if self._thread is None or not self._thread.is_alive() or self._pid != os.getpid():
                self._pid = os.getpid()  # a forked child needs its own thread
                self._thread = threading.Thread(
                    target=self._loop, name="pipeline-heartbeat", daemon=True
                )
                self._thread.start()
        self._wake.set()  # the interval may have changed

    def remove(self, step_id: int) -> None:
        with self._lock:
            self._held.pop(step_id, None)

    def _loop(self) -> None:
        due = time.monotonic() + float(settings.PIPELINE_HEARTBEAT_SECONDS)
        while True:
            interval = float(settings.PIPELINE_HEARTBEAT_SECONDS)
            due = min(due, time.monotonic() + interval)
            if self._wake.wait(max(due - time.monotonic(), 0)):
                self._wake.clear()
                continue
            due = time.monotonic() + interval
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


@contextmanager
def heartbeat(*, step_id: int, run_id: int) -> Iterator[None]:
    """Keep the step's and its run's heartbeat fresh meanwhile (see ``_Heartbeats``)."""
    _heartbeats.add(step_id, run_id)
    try:
        yield
    finally:
        _heartbeats.remove(step_id)
