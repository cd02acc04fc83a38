"""The llm worker: Celery's thread pool, in one process per CPU.

``python -m config.llm_worker [--loglevel L] [--without-mingle] [--without-gossip]`` runs
``LLM_WORKER_PROCESSES`` Celery workers (0, the default, means one per CPU) on the ``llm``
and ``default`` queues,
``LLM_WORKER_CONCURRENCY`` threads in all, shared out between them. Threads suit model
calls, which wait on the network; but a Python process runs its Python code on one core at
a time, and with many runs at once the steps' own work (queries, events, the canvas) kept
one process on one core while the other stayed half idle (``make bench``, figure 3).

One process keeps the node name ``llm@<host>``; several are ``llm1@<host>``, ``llm2@<host>``...
This process loads what the workers run first (Django, the Celery app and its tasks, and the
chat models of the providers the chains name: ``providers.vendors.vendors_preload``), freezes
it (``common.memory``) and forks the workers (``config.supervise``), which share those pages
with it copy-on-write instead of each importing a copy. They stay in this process's process
group, so a process manager's signal to the group reaches all of them at once; SIGTERM or
SIGINT to this process alone is passed on (each worker then stops as Celery does: it
finishes or hands back its tasks). A worker that dies is started again.
"""

from __future__ import annotations

import argparse
import importlib
import math
import os
import sys
from collections.abc import Mapping
from typing import Any

from config.supervise import Supervisor

QUEUES = "llm,default"
# What a Celery worker imports once it starts (its consumer, pool, transport): imported before
# the fork, they are shared too.
_WORKER_MODULES = (
    "celery.apps.worker",
    "celery.app.trace",
    "celery.backends.redis",
    "celery.concurrency.thread",
    "celery.events.state",
    "celery.worker.autoscale",
    "celery.worker.consumer",
    "celery.worker.control",
    "celery.worker.pidbox",
    "celery.worker.strategy",
    "kombu.transport.redis",
)


def _settings():  # noqa: ANN202 - Django's lazy settings object
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")
    from django.conf import settings

    return settings


def plan(processes: int, concurrency: int) -> list[tuple[str, int]]:
    """(node name up to ``@``, threads) of each worker process."""
    processes = max(1, processes)
    threads = max(1, math.ceil(concurrency / processes))
    if processes == 1:
        return [("llm", threads)]
    return [(f"llm{slot + 1}", threads) for slot in range(processes)]


def plan_for_env(env: Mapping[str, str]) -> list[tuple[str, int]]:
    """The plan of an llm worker started with environment ``env`` (another process's: the
    bench starts workers with its own); unset values take the settings' defaults."""
    processes = int(env.get("LLM_WORKER_PROCESSES") or 0) or os.cpu_count() or 1
    threads = int(env.get("LLM_WORKER_CONCURRENCY") or _settings().LLM_WORKER_CONCURRENCY)
    return plan(processes, threads)


def _options(argv: list[str]) -> argparse.Namespace:
    """The options this command takes (a subset of ``celery worker``'s)."""
    parser = argparse.ArgumentParser(prog="python -m config.llm_worker")
    parser.add_argument("-l", "--loglevel", default="WARNING")
    parser.add_argument("--without-mingle", action="store_true")
    parser.add_argument("--without-gossip", action="store_true")
    return parser.parse_args(argv)


def run_worker(app: Any, name: str, threads: int, options: argparse.Namespace) -> int:
    """One Celery worker in this process (as ``celery worker`` starts it, without loading
    Celery's command line, which would import every subcommand and plugin); its exit code."""
    from celery.concurrency import get_implementation
    from celery.utils.nodenames import default_nodename, host_format

    worker = app.Worker(
        hostname=host_format(default_nodename(f"{name}@%h")),
        pool_cls=get_implementation("threads"),
        concurrency=threads,
        queues=QUEUES,
        loglevel=options.loglevel,
        without_mingle=options.without_mingle,
        without_gossip=options.without_gossip,
    )
    worker.start()
    return int(worker.exitcode or 0)


def preload() -> Any:
    """Load what every worker runs (the fork then shares it); the Celery app."""
    import django

    django.setup()
    from common.memory import freeze_startup_objects
    from config.celery import app
    from providers.vendors import vendors_preload

    app.loader.import_default_modules()
    vendors_preload()
    for module in _WORKER_MODULES:
        importlib.import_module(module)
    freeze_startup_objects()
    return app


def main(argv: list[str]) -> int:
    settings = _settings()
    options = _options(argv)
    workers = plan(settings.LLM_WORKER_PROCESSES, settings.LLM_WORKER_CONCURRENCY)
    app = preload()

    def child(slot: int) -> int:
        return run_worker(app, *workers[slot], options)

    if len(workers) == 1:
        return child(0)
    return Supervisor(len(workers), child).run()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
