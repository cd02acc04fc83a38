#!/usr/bin/env python
"""Orchestration per hop, on a real stack: figures, not assertions.

Starts one Celery llm worker (sandbox off, the offline model at ``--latency`` ms a call)
on its own PostgreSQL database and Redis db, runs ``--runs`` runs at once of a DAG of
``--layers`` (default 12 tasks in 3 layers, two dependencies each, seeded), and prints:

- per hop: the gap between a step's ``finished_at`` and the ``started_at`` of the step
  that waited for it (architect -> planner -> orchestrator -> first coders, coder ->
  tester, last dependency's tester -> coder, last tester -> integration), minus nothing;
  median, p90 and max, and the same on the run's critical path;
- wall time over the critical path (the longest chain of dependent steps' own durations);
- the worker's CPU seconds per step and per run (from /proc);
- with ``--runs N``: the makespan of N concurrent runs.

``--root`` runs another checkout's code (e.g. the main branch, for a before/after). The
DAG needs ``providers.offline.answers.dag_set``; a checkout without it runs its default
three-task plan (the hop figures still compare).

    .venv/bin/python bench/engine_hops.py --latency 200 --runs 1
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent.parent


def _args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", default=str(HERE), help="checkout whose code runs")
    parser.add_argument("--latency", type=int, default=200, help="ms per offline call")
    parser.add_argument("--layers", default="4,4,4", help="tasks per DAG layer")
    parser.add_argument("--runs", type=int, default=1, help="runs started at once")
    parser.add_argument("--pool", default="threads", help="the llm worker's pool")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--database", default="aiflow_engine_bench")
    parser.add_argument(
        "--redis", default=os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/5")
    )
    parser.add_argument("--json", default="", help="also write the figures to this file")
    return parser.parse_args()


def _env(args: argparse.Namespace) -> dict[str, str]:
    env = {
        **os.environ,
        "PYTHONPATH": args.root,
        "DJANGO_SETTINGS_MODULE": "config.settings.local",
        "DATABASE_URL": f"postgres://postgres@127.0.0.1:5432/{args.database}",
        "REDIS_URL": args.redis,
        "CELERY_BROKER_URL": args.redis,
        "CELERY_RESULT_BACKEND": args.redis,
        "OFFLINE_LATENCY_MS": str(args.latency),
        "SANDBOX_TESTS_ENABLED": "false",
        "LOG_LEVEL": "WARNING",
        "LLM_WORKER_CONCURRENCY": str(args.concurrency),
    }
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)  # per-process metrics are enough here
    return env


def _cpu_seconds(pid: int) -> float:
    """User + system CPU of a process and its reaped children, in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = sum(int(value) for value in fields[11:15])
    return ticks / os.sysconf("SC_CLK_TCK")


def _seconds(start: Any, end: Any) -> float:
    return float((end - start).total_seconds())


def _gap_ms(before: Any, after: Any) -> float:
    """Milliseconds between ``before`` finishing and ``after`` starting."""
    return 1000 * _seconds(before.finished_at, after.started_at)


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] if ordered else 0.0


def _edges(steps: dict[str, Any], tasks: dict[str, list[str]]) -> list[tuple[str, str]]:
    """(waited for, waiting) pairs of step keys: the hops the orchestration makes."""
    edges: list[tuple[str, str]] = []
    rounds = sorted({int(k.split(":")[1]) for k in steps if k.startswith("design:")})
    previous = None
    for number in rounds:
        architect, planner = f"design:{number}:architect", f"design:{number}:planner"
        if previous:
            edges.append((previous, architect))
        edges.append((architect, planner))
        previous = planner
    if previous and "orchestrate" in steps:
        edges.append((previous, "orchestrate"))

    def last_tester(key: str) -> str:
        attempts = [k for k in steps if k.startswith(f"task:{key}:tester:")]
        return max(attempts, key=lambda k: int(k.rsplit(":", 1)[1]))

    for key, depends in tasks.items():
        attempts = sorted(
            int(k.rsplit(":", 1)[1]) for k in steps if k.startswith(f"task:{key}:coder:")
        )
        for attempt in attempts:
            coder, tester = f"task:{key}:coder:{attempt}", f"task:{key}:tester:{attempt}"
            if attempt > 1:
                edges.append((f"task:{key}:tester:{attempt - 1}", coder))
            elif depends:
                waited = max((last_tester(d) for d in depends), key=lambda k: steps[k].finished_at)
                edges.append((waited, coder))
            else:
                edges.append(("orchestrate", coder))
            edges.append((coder, tester))
    integration = sorted(
        (k for k in steps if k.startswith("integrate:") and k != "integrate:tree"),
        key=lambda k: steps[k].started_at,
    )
    if integration and tasks:
        last = max((last_tester(key) for key in tasks), key=lambda k: steps[k].finished_at)
        edges.append((last, integration[0]))
        edges.extend(zip(integration, integration[1:], strict=False))
    return edges


def _critical_path(steps: dict[str, Any], edges: list[tuple[str, str]]) -> tuple[float, list]:
    """The longest chain of step durations along ``edges``: (seconds, its hops)."""
    incoming: dict[str, list[str]] = {}
    for before, after in edges:
        incoming.setdefault(after, []).append(before)
    memo: dict[str, tuple[float, list]] = {}

    def longest(key: str) -> tuple[float, list]:
        if key not in memo:
            own = (steps[key].finished_at - steps[key].started_at).total_seconds()
            best: tuple[float, list] = (0.0, [])
            for before in incoming.get(key, []):
                length, hops = longest(before)
                if length > best[0]:
                    best = (length, [*hops, (before, key)])
            memo[key] = (own + best[0], best[1])
        return memo[key]

    return max(
        (longest(key) for key in steps if key in incoming or key.startswith("design")),
        key=lambda item: item[0],
    )


def main() -> None:
    args = _args()
    env = _env(args)
    os.environ.pop("PROMETHEUS_MULTIPROC_DIR", None)
    os.environ.update(env)
    sys.path.insert(0, args.root)
    subprocess.run(
        ["createdb", "-h", "127.0.0.1", "-U", "postgres", args.database],
        capture_output=True,
        check=False,
    )

    import django

    django.setup()
    import redis
    from django.core.management import call_command

    from accounts.models import User
    from pipeline.models import PlanTask, Run, Step
    from pipeline.services import run_start
    from projects.models import Project
    from providers.offline import answers

    redis.Redis.from_url(args.redis).flushdb()
    call_command("migrate", verbosity=0)
    user, _ = User.objects.get_or_create(email="bench@example.com", defaults={"username": "bench"})
    project, _ = Project.objects.get_or_create(owner=user, name="engine-hops")
    widths = [int(w) for w in args.layers.split(",") if w]
    shaped = hasattr(answers, "dag_set") and Path(answers.__file__).is_relative_to(args.root)
    if shaped:
        answers.dag_set(answers.dag_layers(widths, fan_in=2, seed=1))

    worker = subprocess.Popen(  # noqa: S603 - our own command
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "config",
            "worker",
            "-Q",
            "llm,default,sandbox",
            "--pool",
            args.pool,
            "-c",
            str(args.concurrency),
            "-n",
            "hops@%h",
            "--without-mingle",
            "--without-gossip",
        ],
        cwd=args.root,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        time.sleep(6)  # the worker's start-up
        warm = run_start(project=project, user=user, prompt="A warm-up tool")
        while not Run.objects.get(id=warm.id).is_finished:
            time.sleep(0.2)
        cpu_before = _cpu_seconds(worker.pid)
        started = time.monotonic()
        runs = [
            run_start(project=project, user=user, prompt=f"A tool number {i}")
            for i in range(args.runs)
        ]
        pending = {run.id for run in runs}
        while pending:
            pending -= set(
                Run.objects.filter(id__in=pending, status__in=Run.FINISHED).values_list(
                    "id", flat=True
                )
            )
            time.sleep(0.05)
        makespan = time.monotonic() - started
        cpu = _cpu_seconds(worker.pid) - cpu_before
    finally:
        os.killpg(worker.pid, signal.SIGTERM)
        worker.wait(timeout=60)

    gaps: list[float] = []
    critical_gaps: list[float] = []
    ratios: list[float] = []
    step_count = 0
    statuses = []
    for run in Run.objects.filter(id__in=[r.id for r in runs]):
        statuses.append(run.status)
        if run.status != Run.Status.COMPLETED:
            print(f"run {run.id} {run.status}: {run.error_code} {run.error}", file=sys.stderr)
            continue
        steps = {
            s.key: s
            for s in Step.objects.filter(
                run=run, started_at__isnull=False, finished_at__isnull=False
            )
        }
        step_count += len(steps)
        tasks = dict(PlanTask.objects.filter(run=run).values_list("key", "depends_on"))
        edges = [(a, b) for a, b in _edges(steps, tasks) if a in steps and b in steps]
        gaps += [_gap_ms(steps[a], steps[b]) for a, b in edges]
        length, hops = _critical_path(steps, edges)
        critical_gaps += [_gap_ms(steps[a], steps[b]) for a, b in hops]
        ratios.append(_seconds(run.created_at, run.finished_at) / length)

    figures = {
        "root": args.root,
        "code": str(Path(answers.__file__).parents[2]),
        "latency_ms": args.latency,
        "dag": widths if shaped else "default plan (3 tasks in 2 layers)",
        "runs": args.runs,
        "pool": f"{args.pool} -c {args.concurrency}",
        "completed": statuses.count(Run.Status.COMPLETED),
        "hop_ms_median": round(statistics.median(gaps), 1),
        "hop_ms_p90": round(_percentile(gaps, 0.9), 1),
        "hop_ms_max": round(max(gaps), 1),
        "critical_hop_ms_median": round(statistics.median(critical_gaps), 1),
        "critical_hop_ms_max": round(max(critical_gaps), 1),
        "wall_over_critical_path": round(statistics.median(ratios), 3),
        "makespan_s": round(makespan, 2),
        "cpu_s_per_run": round(cpu / args.runs, 3),
        "cpu_ms_per_step": round(1000 * cpu / max(step_count, 1), 1),
    }
    width = max(len(k) for k in figures)
    for key, value in figures.items():
        print(f"{key:<{width}}  {value}")
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
