#!/usr/bin/env python
"""Benchmarks: figures, not assertions. `make bench` runs them against real processes.

Starts its own Celery worker and daphne (on free ports, Redis db 9, the development
database), then measures:

1. one run with the offline model at OFFLINE_LATENCY_MS per call: wall time, the time
   its steps spent, and the parallel speed-up that the DAG layers give;
2. several runs started at once: total wall time and runs per minute;
3. HTTP latency of an authenticated GET /projects (p50 / p95 / max) through daphne.
"""

import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
LATENCY_MS = int(os.environ.get("BENCH_OFFLINE_LATENCY_MS", "300"))
CONCURRENT_RUNS = int(os.environ.get("BENCH_CONCURRENT_RUNS", "4"))
HTTP_REQUESTS = int(os.environ.get("BENCH_HTTP_REQUESTS", "300"))

ENV = {
    **os.environ,
    "DJANGO_SETTINGS_MODULE": "config.settings.local",
    "REDIS_URL": os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/9"),
    "CELERY_BROKER_URL": os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/9"),
    "CELERY_RESULT_BACKEND": os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/9"),
    "OFFLINE_LATENCY_MS": str(LATENCY_MS),
    "LOG_LEVEL": "WARNING",
    "RATE_LIMIT_GENERATE": "1000/hour",
    "RATE_LIMIT_USER": "100000/minute",
}
ENV.pop("PROMETHEUS_MULTIPROC_DIR", None)  # per-process metrics are enough here
os.environ.update(ENV)
os.environ.pop("PROMETHEUS_MULTIPROC_DIR", None)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _start(argv: list[str]) -> subprocess.Popen:
    return subprocess.Popen(  # noqa: S603 - our own commands
        argv,
        cwd=ROOT,
        env=ENV,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


def _wait_port(port: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise SystemExit(f"nothing listens on {port}")


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def main() -> None:
    import django

    django.setup()
    import redis
    from django.conf import settings
    from django.core.management import call_command

    from accounts.models import User
    from pipeline.models import Run, Step
    from pipeline.services import run_start
    from projects.models import Project

    redis.Redis.from_url(settings.REDIS_URL).flushdb()
    call_command("migrate", verbosity=0)
    user, _ = User.objects.get_or_create(email="bench@example.com", defaults={"username": "bench"})
    user.set_password("Bench-Password-42!")
    user.save()
    project, _ = Project.objects.get_or_create(owner=user, name="bench")

    port = _free_port()
    worker = _start(
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
            "threads",
            "-c",
            "16",
            "-n",
            "bench@%h",
        ]
    )
    web = _start(
        [
            sys.executable,
            "-m",
            "config.serve",
            "-b",
            "127.0.0.1",
            "-p",
            str(port),
            "config.asgi:application",
        ]
    )
    try:
        _wait_port(port)
        time.sleep(3)  # the worker's start-up

        def run_and_wait(prompts: list[str]) -> tuple[float, list[Run]]:
            started = time.monotonic()
            runs = [run_start(project=project, user=user, prompt=p) for p in prompts]
            pending = {r.id for r in runs}
            while pending:
                done = set(
                    Run.objects.filter(id__in=pending, status__in=Run.FINISHED).values_list(
                        "id", flat=True
                    )
                )
                pending -= done
                time.sleep(0.1)
            return time.monotonic() - started, [Run.objects.get(id=r.id) for r in runs]

        print(f"offline model latency per call: {LATENCY_MS} ms")
        wall, (run,) = run_and_wait(["Create a REST API for a todo application"])
        steps = Step.objects.filter(run=run).exclude(started_at=None).exclude(finished_at=None)
        busy = sum(
            (s.finished_at - s.started_at).total_seconds()
            for s in steps
            if s.finished_at is not None and s.started_at is not None
        )
        print(
            f"1 run: status={run.status} wall={wall:.1f}s steps={steps.count()} "
            f"step-time={busy:.1f}s parallel speed-up={busy / wall:.2f}x"
        )

        wall, runs = run_and_wait(
            [f"Create a todo API, variant {n}" for n in range(CONCURRENT_RUNS)]
        )
        statuses = sorted({r.status for r in runs})
        print(
            f"{CONCURRENT_RUNS} runs at once: wall={wall:.1f}s statuses={statuses} "
            f"throughput={CONCURRENT_RUNS / wall * 60:.1f} runs/min"
        )

        body = json.dumps({"email": "bench@example.com", "password": "Bench-Password-42!"})
        login = urllib.request.Request(
            f"http://127.0.0.1:{port}/auth/login",
            data=body.encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(login, timeout=10) as response:  # noqa: S310 - loopback
            token = json.load(response)["access"]
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/projects", headers={"Authorization": f"Bearer {token}"}
        )
        timings = []
        for _ in range(HTTP_REQUESTS):
            t0 = time.perf_counter()
            with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
                response.read()
            timings.append((time.perf_counter() - t0) * 1000)
        print(
            f"GET /projects x{HTTP_REQUESTS}: p50={statistics.median(timings):.1f}ms "
            f"p95={_percentile(timings, 0.95):.1f}ms max={max(timings):.1f}ms"
        )
    finally:
        for proc in (web, worker):
            os.killpg(proc.pid, signal.SIGTERM)
        for proc in (web, worker):
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)


if __name__ == "__main__":
    main()
