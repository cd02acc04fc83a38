"""The llm worker: Celery's thread pool, in one process per CPU.

``python -m config.llm_worker [celery worker options]`` runs ``LLM_WORKER_PROCESSES``
Celery workers (0, the default, means one per CPU) on the ``llm`` and ``default`` queues,
``LLM_WORKER_CONCURRENCY`` threads in all, shared out between them. Threads suit model
calls, which wait on the network; but a Python process runs its Python code on one core at
a time, and with many runs at once the steps' own work (queries, events, the canvas) kept
one process on one core while the other stayed half idle (``make bench``, figure 3).

One process keeps the node name ``llm@<host>``; several are ``llm1@<host>``, ``llm2@<host>``...
They stay in this process's process group, so a process manager's signal to the group
reaches all of them at once; SIGTERM or SIGINT to this process alone is passed on (each
worker then stops as Celery does: it finishes or hands back its tasks). A worker that dies
is started again.
"""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Mapping

from config.supervise import Supervisor

QUEUES = "llm,default"


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


def command(name: str, threads: int, extra: list[str]) -> list[str]:
    return [
        *(sys.executable, "-m", "celery", "-A", "config", "worker", "-Q", QUEUES),
        *("--pool", "threads", "-c", str(threads), "-n", f"{name}@%h", *extra),
    ]


def main(argv: list[str]) -> int:
    settings = _settings()
    workers = plan(settings.LLM_WORKER_PROCESSES, settings.LLM_WORKER_CONCURRENCY)
    if len(workers) == 1:
        os.execv(sys.executable, command(*workers[0], argv))  # noqa: S606 - Celery itself

    def child(slot: int) -> list[str]:
        return command(*workers[slot], argv)

    return Supervisor(len(workers), child).run()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
