#!/usr/bin/env python
"""CPU per run of the pipeline, in one process: figures, not assertions.

Starts a Celery worker in this process (Celery's thread pool on the ``llm``, ``sandbox`` and
``default`` queues, as the tests' worker), then starts ``--runs`` offline runs of three tasks
(the offline model plans them itself, the sandbox off unless ``--sandbox``) one after
another, each waited for, and prints the process's CPU time per run (the worker's threads,
its consumer and this thread's polling together, with the sandboxed processes it waited for)
and the wall time, and what PostgreSQL and Redis spent meanwhile. Unlike ``make bench``
no other process shares the work, so the figure holds on a busy machine and a profile
sees all of it.

The runs go to a database of their own (created and migrated on first use) and to the
Redis of ``TEST_REDIS_URL`` (``source .wtenv``), flushed first.

    .venv/bin/python bench/run_cpu.py                        # 20 runs after 2 untimed
    .venv/bin/python bench/run_cpu.py -n 10 --profile var/runs.prof

``--profile`` profiles every thread the worker starts (each with its own thread's CPU
clock, ``time.thread_time``, so threads running at once do not charge each other), merges
the profiles and prints the top functions by own time and by cumulative time.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import os
import pstats
import sys
import threading
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent.parent
EMAIL = "run-cpu@bench.local"


def _args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", "--runs", type=int, default=20, help="timed runs")
    parser.add_argument("--warmup", type=int, default=2, help="untimed runs first")
    parser.add_argument("--database", default="aiflow_run_cpu_bench")
    parser.add_argument(
        "--redis", default=os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/3")
    )
    parser.add_argument("--profile", type=Path, help="write a cProfile of the timed runs")
    parser.add_argument(
        "--sandbox",
        action="store_true",
        help="testers run their checks in the sandbox (root); the CPU then includes the "
        "sandboxed processes this process waited for",
    )
    parser.add_argument("--top", type=int, default=40, help="functions printed per sort")
    return parser.parse_args()


def _setup(args: argparse.Namespace) -> None:
    """Environment, database and Django."""
    sys.path.insert(0, str(HERE))
    from bench.database import in_process_database

    in_process_database(
        database=args.database,
        redis_url=args.redis,
        root=HERE,
        env={
            "RATE_LIMIT_GENERATE": "100000/hour",
            "SANDBOX_TESTS_ENABLED": "true" if args.sandbox else "false",
        },
    )
    import django

    django.setup()
    import redis
    from django.core.management import call_command

    call_command("migrate", interactive=False, verbosity=0)
    redis.Redis.from_url(args.redis).flushdb()


def _project() -> Any:
    from accounts.models import User
    from projects.models import Project

    user, _ = User.objects.get_or_create(email=EMAIL, defaults={"username": "run-cpu"})
    project = Project.objects.filter(owner=user).first()
    return project or Project.objects.create(owner=user, name="Bench", description="run cpu")


def _one_run(project: Any) -> None:
    """Start one run and wait until it is finished (polling slowly: the poll is CPU too)."""
    from pipeline.models import Run
    from pipeline.services import run_start

    run = run_start(project=project, user=project.owner, prompt="A todo list manager with tags")
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        status = Run.objects.filter(id=run.id).values_list("status", flat=True).get()
        if status in Run.FINISHED:
            if status != Run.Status.COMPLETED:
                raise SystemExit(f"run {run.id} ended {status}")
            return
        time.sleep(0.25)
    raise SystemExit(f"run {run.id} did not finish in 120 s")


class ThreadProfiles:
    """A cProfile of every thread started after ``install``, each on its own CPU clock."""

    def __init__(self) -> None:
        self.profiles: list[cProfile.Profile] = []
        self._lock = threading.Lock()

    def _bootstrap(self, *_: Any) -> None:
        # Called once on a new thread's first event: hand the thread to a profiler of its own.
        sys.setprofile(None)
        profile = cProfile.Profile(time.thread_time)
        with self._lock:
            self.profiles.append(profile)
        profile.enable()

    def install(self) -> None:
        threading.setprofile(self._bootstrap)

    def stats(self, main: cProfile.Profile) -> pstats.Stats:
        stats = pstats.Stats(main)
        for profile in self.profiles:
            with contextlib.suppress(TypeError):  # a thread that never ran a function
                stats.add(profile)
        return stats


def _cpu() -> float:
    """This process's CPU seconds, with its waited-for children's (the sandbox's launchers
    and what they reaped)."""
    times = os.times()
    return times.user + times.system + times.children_user + times.children_system


def main() -> None:
    args = _args()
    _setup(args)
    from celery.contrib.testing.worker import start_worker

    from config.celery import app

    project = _project()

    def worker() -> Any:
        return start_worker(
            app,
            pool="threads",
            concurrency=8,
            queues=["llm", "sandbox", "default"],
            perform_ping_check=False,
            loglevel="WARNING",
            shutdown_timeout=30,
        )

    # The untimed runs on a worker of their own: imports and first-use caches are warm, and
    # the timed worker's threads (each profiled from its start) see only the timed runs.
    with worker():
        for _ in range(args.warmup):
            _one_run(project)
    threads = ThreadProfiles() if args.profile else None
    if threads is not None:
        threads.install()
    main_profile = cProfile.Profile(time.thread_time) if threads is not None else None
    from bench.database import servers_cpu

    with worker():
        cpu, wall, servers = _cpu(), time.perf_counter(), servers_cpu()
        if main_profile is not None:
            main_profile.enable()
        for _ in range(args.runs):
            _one_run(project)
        if main_profile is not None:
            main_profile.disable()
        cpu, wall = _cpu() - cpu, time.perf_counter() - wall
        servers = {name: used - servers[name] for name, used in servers_cpu().items()}
    print(
        f"runs: {args.runs}  CPU-s per run: {cpu / args.runs:.4f}  "
        f"wall-s per run: {wall / args.runs:.3f}  servers' CPU-s per run: "
        + ", ".join(f"{name} {used / args.runs:.4f}" for name, used in servers.items())
    )
    if threads is not None and main_profile is not None:
        stats = threads.stats(main_profile)
        stats.dump_stats(str(args.profile))
        for key in ("tottime", "cumulative"):
            print(f"\n--- by {key} ---")
            stats.sort_stats(key).print_stats(args.top)


if __name__ == "__main__":
    main()
