#!/usr/bin/env python
"""What tracing costs: CPU per run and per ``GET /projects``, with tracing off and on.

Usage: ``.venv/bin/python bench/tracing_overhead.py [RUNS] [REQUESTS] [BASE_REV]``
(PostgreSQL and Redis running). It makes a database of its own (``aiflow_bench_tracing``,
dropped first), then, in a fresh process per mode (tracing is set up once per process, as in
the web and worker processes), runs ``RUNS`` generations one after the other through an
in-process Celery worker with the offline model (no latency, no sandbox) and ``REQUESTS``
calls of ``GET /projects`` (20 projects) through Django's test client, and prints the median
CPU seconds of a run and the mean CPU of a request (``time.process_time``: every thread of
the process, the worker's included). "off" has ``OTEL_EXPORTER_OTLP_ENDPOINT`` empty; "on"
sends every span to a local OTLP/HTTP stub collector, which counts what it receives. With
``BASE_REV`` (a commit without tracing, e.g. the one this work started from) a third mode,
"base", runs the same measurement on that commit's code (``git archive`` into a temporary
directory, its own database migrated by its own code): "off" against "base" is what having
the tracing code costs when it is not turned on. Modes alternate (base, off, on, base, off,
on) so a busy moment of the machine does not land on one of them.

Figures, never assertions: the machine is shared.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[0] = str(ROOT)  # not bench/: its modules must not shadow the standard library

from bench.database import migrated_database  # noqa: E402

DB_NAME = "aiflow_bench_tracing"


def _env(endpoint: str, *, root: Path = ROOT, db_name: str = DB_NAME) -> dict[str, str]:
    base = os.environ.get("BENCH_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432")
    redis_url = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/13")
    env = {
        **os.environ,
        "PYTHONPATH": str(root),
        "DJANGO_SETTINGS_MODULE": "config.settings.local",
        "DJANGO_DEBUG": "false",
        "DJANGO_ALLOWED_HOSTS": "testserver,localhost",
        "DATABASE_URL": f"{base.rstrip('/')}/{db_name}",
        "REDIS_URL": redis_url,
        "CELERY_BROKER_URL": redis_url,
        "CELERY_RESULT_BACKEND": redis_url,
        "LOG_LEVEL": "WARNING",
        "SANDBOX_TESTS_ENABLED": "false",
        "OFFLINE_LATENCY_MS": "0",
        "RATE_LIMIT_USER": "100000000/minute",
        "RATE_LIMIT_GENERATE": "100000/hour",
        "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint,
        "MEDIA_ROOT": str(ROOT / "var" / "bench-tracing-media"),
    }
    for name in ("PROMETHEUS_MULTIPROC_DIR", "TEST_REDIS_URL", "TEST_DB_NAME"):
        env.pop(name, None)
    return env


def _prepare_database(*, root: Path = ROOT, db_name: str = DB_NAME) -> None:
    base = os.environ.get("BENCH_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432")
    migrated_database(base, db_name, root=root, env=_env("", root=root, db_name=db_name))


def _base_tree(rev: str) -> Path:
    """The code of commit ``rev`` in a temporary directory (the repository is only read)."""
    target = Path(tempfile.mkdtemp(prefix="aiflow-bench-base-"))
    archive = subprocess.run(
        ["git", "archive", "--format=tar", rev], cwd=ROOT, capture_output=True, check=True
    )
    subprocess.run(["tar", "-x", "-C", str(target)], input=archive.stdout, check=True)
    return target


class _Collector:
    """A stub OTLP/HTTP collector: answers 200 and counts requests and bytes."""

    def __init__(self) -> None:
        self.requests = 0
        self.bytes = 0
        collector = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:  # noqa: N802 - the standard library's name
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                collector.requests += 1
                collector.bytes += len(body)
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"


def _child(runs: int, requests: int) -> None:
    import django

    django.setup()
    import logging

    logging.disable(logging.CRITICAL)
    import redis
    from celery.contrib.testing.worker import start_worker
    from django.conf import settings
    from rest_framework.test import APIClient

    from accounts.models import User
    from accounts.services import session_start
    from config.celery import app
    from pipeline.models import Run
    from pipeline.services import run_start
    from projects.models import Project

    redis.Redis.from_url(settings.REDIS_URL).flushdb()
    user = User.objects.create_user(
        username=f"bench{os.getpid()}", email=f"bench{os.getpid()}@example.com", password=None
    )
    projects = [Project.objects.create(owner=user, name=f"Bench {i}") for i in range(20)]
    _, pair = session_start(user=user, ip="127.0.0.1", user_agent="bench")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {pair.access}")

    def one_run() -> float:
        started = time.process_time()
        run = run_start(project=projects[0], user=user, prompt="A todo list manager")
        while True:
            status = Run.objects.values_list("status", flat=True).get(id=run.id)
            if status in Run.FINISHED:
                break
            time.sleep(0.02)
        if status != Run.Status.COMPLETED:
            raise SystemExit(f"the run ended {status}")
        return time.process_time() - started

    with start_worker(
        app,
        pool="threads",
        concurrency=8,
        queues=["llm", "sandbox", "default"],
        perform_ping_check=False,
        loglevel="WARNING",
    ):
        one_run()  # warm caches and connections
        run_cpu = [one_run() for _ in range(runs)]
    for _ in range(20):
        client.get("/projects")
    started = time.process_time()
    for _ in range(requests):
        answer = client.get("/projects")
        if answer.status_code != 200:
            raise SystemExit(f"GET /projects answered {answer.status_code}")
    request_cpu = (time.process_time() - started) / requests
    try:
        from common.tracing import _state, tracing_enabled
    except ImportError:  # a commit from before tracing
        enabled = False
    else:
        enabled = tracing_enabled()
        if enabled:
            _state.provider.force_flush()
    print(
        json.dumps(
            {
                "tracing": enabled,
                "run_cpu": statistics.median(run_cpu),
                "request_cpu": request_cpu,
            }
        )
    )


def _measure(
    mode: str, collector: _Collector, runs: int, requests: int, base: Path | None
) -> dict[str, Any]:
    endpoint = collector.url if mode == "on" else ""
    root, db_name = (base, f"{DB_NAME}_base") if mode == "base" and base else (ROOT, DB_NAME)
    done = subprocess.run(
        [sys.executable, __file__, "--child", str(runs), str(requests)],
        cwd=root,
        env=_env(endpoint, root=root, db_name=db_name),
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"the {mode} measurement failed:\n{done.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    if result["tracing"] != (mode == "on"):
        raise SystemExit(f"tracing was {'on' if result['tracing'] else 'off'} in the {mode} run")
    return result


def main() -> None:
    if sys.argv[1:2] == ["--child"]:
        _child(int(sys.argv[2]), int(sys.argv[3]))
        return
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    requests = int(sys.argv[2]) if len(sys.argv) > 2 else 300
    base_rev = sys.argv[3] if len(sys.argv) > 3 else ""
    _prepare_database()
    base = _base_tree(base_rev) if base_rev else None
    modes = ("base", "off", "on") if base else ("off", "on")
    try:
        if base:
            _prepare_database(root=base, db_name=f"{DB_NAME}_base")
        collector = _Collector()
        figures: dict[str, list[dict[str, Any]]] = {mode: [] for mode in modes}
        exports = dict.fromkeys(modes, 0)
        for mode in modes * 2:
            before = collector.requests
            figures[mode].append(_measure(mode, collector, runs, requests, base))
            exports[mode] += collector.requests - before
    finally:
        if base:
            shutil.rmtree(base, ignore_errors=True)
    print(f"Tracing overhead ({runs} runs, offline model, no sandbox; {requests} GET /projects)")
    print("| tracing | CPU per run (median) | CPU per GET /projects (mean) |")
    print("|---|---|---|")
    for mode in modes:
        run_cpu = statistics.mean(f["run_cpu"] for f in figures[mode])
        request_cpu = statistics.mean(f["request_cpu"] for f in figures[mode])
        label = f"base ({base_rev}, no tracing code)" if mode == "base" else mode
        print(f"| {label} | {run_cpu * 1000:.0f} ms | {request_cpu * 1e6:.0f} µs |")
    print(
        f"OTLP exports the stub collector received: {exports['on']} from the 'on' processes "
        f"({collector.bytes / 1024:.0f} KiB), {exports['off']} from the 'off' ones."
    )


if __name__ == "__main__":
    main()
