"""A change to Celery 5.7's Django fixup: a prefork worker's processes keep their database
connection pools from one task to the next.

Celery's fixup ends each task's database work before and after the task (a connection back to
its pool, or closed when it has none), and in a prefork worker it also closes the process's
whole pool, there and when the process starts (celery/celery#10554, unfixed in 5.7.0). At the
start it must: a pool inherited through ``fork`` shares its sockets with the parent. At every
task it costs a new pool each time: the sandbox worker's processes opened 57 connections each
for 11 runs, about 7 per tester step, and PostgreSQL forked a backend for each and parsed and
planned the step's prepared statements again on it (``make bench``, 10 sandboxed runs: 0.45
CPU-s of PostgreSQL per run where a run without the sandbox took 0.08).

Here the two task boundaries give each connection back to its pool and leave the pool open,
as the fix proposed upstream does (celery/celery#10555); a process still closes what it
inherited when it starts, and its pool ends with it. A connection that broke while it waited
in the pool is still replaced before any task gets it (``common.postgresql``'s check). With
``CELERY_DB_REUSE_MAX`` set, Celery's own behaviour is kept.
"""

from __future__ import annotations

from typing import Any

from celery.fixups.django import DjangoWorkerFixup  # type: ignore[attr-defined]  # not in the stubs

_original_prerun = DjangoWorkerFixup.on_task_prerun
_original_postrun = DjangoWorkerFixup.on_task_postrun


def _return_connections(fixup: DjangoWorkerFixup) -> None:
    """Every connection this thread opened goes back to its pool (closed when unpooled)."""
    for conn in fixup._db.connections.all(initialized_only=True):
        try:
            conn.close()
        except fixup.interface_errors:
            pass
        except fixup.DatabaseError as exc:
            if "closed" not in str(exc) and "not connected" not in str(exc):
                raise


def _on_task_prerun(self: DjangoWorkerFixup, sender: Any, **kwargs: Any) -> None:
    if self.db_reuse_max:
        return _original_prerun(self, sender, **kwargs)
    if not getattr(sender.request, "is_eager", False):
        _return_connections(self)
    return None


def _on_task_postrun(self: DjangoWorkerFixup, sender: Any, **kwargs: Any) -> None:
    if self.db_reuse_max:
        return _original_postrun(self, sender, **kwargs)
    if not getattr(sender.request, "is_eager", False):
        _return_connections(self)
        self.close_cache()
    return None


def django_fixup_apply() -> None:
    """Patch the fixup's task boundaries (before a worker installs it); idempotent."""
    DjangoWorkerFixup.on_task_prerun = _on_task_prerun  # type: ignore[method-assign]
    DjangoWorkerFixup.on_task_postrun = _on_task_postrun  # type: ignore[method-assign]
