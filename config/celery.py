"""The Celery application: Redis broker, late acks, three queues (task events for Flower only
when ``FLOWER_TASK_EVENTS`` asks for them).

Every task logs one request id, bound when it starts and cleared when it ends, so a worker
thread never carries one task's id into the next: a task of a run logs the id of the request
that started the run (stored with the run, so tasks queued by an approval, a resume or the
reaper log it too, or none when the run has none); any other task logs the id of whatever
queued it (carried in the message's headers).
"""

import functools
import inspect
import os
from collections.abc import Mapping, Sequence
from typing import Any

from celery import Celery
from celery.signals import (
    beat_init,
    before_task_publish,
    task_postrun,
    task_prerun,
    worker_before_create_process,
    worker_init,
    worker_process_shutdown,
    worker_ready,
    worker_shutdown,
)
from kombu import Queue

from config.broker_fixes import broker_fixes_apply
from config.django_fixup import django_fixup_apply

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")
# A Redis restart must not make a worker exit (see config.broker_fixes).
broker_fixes_apply()
# A prefork worker's processes keep their database pools between tasks (config.django_fixup).
django_fixup_apply()

app = Celery("aiflow")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.conf.task_queues = [Queue(name) for name in ("llm", "sandbox", "default")]
app.conf.imports = ["common.tasks"]
app.autodiscover_tasks()
# Every worker reports itself for /health (config.health).
app.steps["worker"].add("config.health:WorkerHeartbeat")


@before_task_publish.connect
def _carry_request_id(headers: dict | None = None, **_: object) -> None:
    """Put the current request id into the message so the task's logs carry it."""
    from common.logging import get_request_id

    request_id = get_request_id()
    if headers is not None and request_id and "request_id" not in headers:
        headers["request_id"] = request_id


@functools.cache
def _run_id_position(task_name: str, function: Any) -> int | None:
    """Where ``run_id`` sits among the task's positional arguments (None: it takes none)."""
    try:
        parameters = list(inspect.signature(function).parameters)
    except (TypeError, ValueError):
        return None
    return parameters.index("run_id") if "run_id" in parameters else None


def run_id_of(task: Any, args: Sequence[Any], kwargs: Mapping[str, Any]) -> int | None:
    """The ``run_id`` a task was called with, if it takes one."""
    if "run_id" in kwargs:
        return kwargs["run_id"]
    position = _run_id_position(task.name, task.run)
    if position is not None and position < len(args):
        return args[position]
    return None


@functools.lru_cache(maxsize=4096)
def run_request_id(run_id: int) -> str | None:
    """The request id stored with run ``run_id`` (it never changes), or None."""
    from django.apps import apps

    run_model = apps.get_model("pipeline", "Run")
    stored = run_model.objects.filter(id=run_id).values_list("request_id", flat=True).first()
    return stored or None


@task_prerun.connect
def _bind_request_id(
    task: Any = None,
    args: Sequence[Any] | None = None,
    kwargs: Mapping[str, Any] | None = None,
    **_: object,
) -> None:
    from common.logging import bind_request_id

    request_id: str | None = None
    if task is not None:
        run_id = run_id_of(task, args or (), kwargs or {})
        if isinstance(run_id, int):
            request_id = run_request_id(run_id)
        else:
            request_id = getattr(task.request, "request_id", None)
    bind_request_id(request_id)


@task_postrun.connect
def _unbind_request_id(**_: object) -> None:
    from common.logging import bind_request_id

    bind_request_id(None)


_frozen_before_fork = False


@worker_ready.connect
def _freeze_startup_objects(**_: object) -> None:
    """A worker that has loaded everything keeps it out of the collector's full passes
    (``common.memory``)."""
    from common.memory import freeze_startup_objects

    freeze_startup_objects()


@worker_before_create_process.connect
def _freeze_before_forking(**_: object) -> None:
    """A prefork pool (the sandbox worker) forks its children once the tasks are imported:
    frozen first, what they inherit stays in pages they share with the parent (a collector
    pass in a child would otherwise write to every object it walks, copying the page).

    With the sandbox on, its children run the testers, and a tester asks the model: LangChain
    and the configured providers' modules are loaded here first, once, instead of by each
    child on its first tester (about 1 CPU-s each, which made a lone run cost twice what a
    run costs among ten)."""
    global _frozen_before_fork
    if not _frozen_before_fork:
        from django.conf import settings

        from common.memory import freeze_startup_objects

        if settings.SANDBOX_TESTS_ENABLED:
            from providers.vendors import vendors_preload

            vendors_preload()
        freeze_startup_objects()
        _frozen_before_fork = True


@worker_ready.connect
def _sweep_abandoned_workspaces(sender: Any = None, **_: object) -> None:
    """A sandbox worker starting up removes the run workspaces a killed one left mounted."""
    consumer = getattr(sender, "task_consumer", None)
    queues = {queue.name for queue in getattr(consumer, "queues", None) or []}
    if "sandbox" not in queues:
        return
    from projects.workspace import workspace_sweep_runs

    workspace_sweep_runs()


@worker_shutdown.connect
@worker_process_shutdown.connect
def _mark_worker_left(exitcode: int | None = 0, **_: object) -> None:
    """A worker process that stops cleanly (a warm shutdown, a pool child ending its loop)
    has sent what its tasks had to: the runs whose last step it stored are not resumed as
    if it had died while their next task waits in a queue (``pipeline.services.liveness``)."""
    if exitcode:
        return
    from pipeline.services.heartbeats import worker_stopped

    worker_stopped()


# --- make bench: statements per run (BENCH_COUNT_STATEMENTS; see common.statements) ---------
_counting = False


@worker_init.connect
@beat_init.connect
def _count_statements(**_: object) -> None:
    global _counting
    from django.conf import settings

    if settings.BENCH_COUNT_STATEMENTS:
        from common.statements import statements_install

        statements_install()
        _counting = True


@task_prerun.connect
def _count_statements_for_run(
    task: Any = None,
    args: Sequence[Any] | None = None,
    kwargs: Mapping[str, Any] | None = None,
    **_: object,
) -> None:
    if _counting:
        from common.statements import statements_bind_run

        run_id = run_id_of(task, args or (), kwargs or {}) if task is not None else None
        statements_bind_run(run_id if isinstance(run_id, int) else None)


@task_postrun.connect
def _count_statements_flush(**_: object) -> None:
    if _counting:
        from common.statements import statements_bind_run, statements_flush

        statements_flush()
        statements_bind_run(None)
