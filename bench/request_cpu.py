#!/usr/bin/env python
"""CPU and SQL statements per API request, in one process: figures, not assertions.

Calls ``GET /projects`` and ``GET /runs/{id}`` ``--requests`` times each through the real
ASGI application (``config.asgi.application``: the one-trip handler, every middleware, DRF
with a bearer token, the throttle on Redis), one request after another, and prints per
request the process's CPU time (``time.process_time``: the event loop and the worker
thread together), the wall time and the SQL statements sent. Unlike ``bench/api_load.py``
no HTTP server and no load generator share the CPU, so the figures hold on a busy machine.

The data is seeded on a database of its own (created and migrated on first use): a user
with 20 projects, and a follow-up run of an imported repository with what ``GET /runs/{id}``
reads (design rounds, plan tasks, testers with regressions, an integration suite, messages
to tasks, a delivery, both trees).

    .venv/bin/python bench/request_cpu.py                    # both paths, 2000 requests each
    .venv/bin/python bench/request_cpu.py --path runs -n 500 --profile var/runs.prof
    .venv/bin/python bench/request_cpu.py --dump var/bodies.json   # the bodies, to compare

``--profile`` writes a cProfile of the timed requests (on the thread's CPU clock: waits on
the database and Redis are not counted) and prints its top functions;
``--root`` runs another checkout's code on the same data (e.g. the main branch, for a
before/after).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import os
import pstats
import sys
import threading
import time
from concurrent.futures import Executor, Future
from decimal import Decimal
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent.parent
PROJECTS = 20
EMAIL = "request-cpu@bench.local"


def _args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", default=str(HERE), help="checkout whose code runs")
    parser.add_argument("--path", choices=("projects", "runs", "both"), default="both")
    parser.add_argument("-n", "--requests", type=int, default=2000, help="timed, per path")
    parser.add_argument("--warmup", type=int, default=200, help="untimed requests first")
    parser.add_argument("--database", default="aiflow_request_cpu_bench")
    parser.add_argument(
        "--redis", default=os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/9")
    )
    parser.add_argument("--profile", type=Path, help="write a cProfile of the timed requests")
    parser.add_argument("--dump", type=Path, help="write each path's response body here")
    parser.add_argument(
        "--run",
        type=int,
        help="read this run of --database (e.g. aiflow_bench's, after make bench) as its "
        "creator, instead of the seeded one",
    )
    return parser.parse_args()


def _setup(args: argparse.Namespace) -> Any:
    """Environment, database and Django; the ASGI application."""
    sys.path.insert(0, str(HERE))
    from bench.database import in_process_database

    in_process_database(
        database=args.database,
        redis_url=args.redis,
        root=args.root,
        # The limit is still checked on every call; the benchmark just never reaches it.
        env={"RATE_LIMIT_USER": "100000000/minute"},
    )
    if args.profile:  # the sync chain runs on the event loop's thread (_InlineExecutor)
        os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    from django.core.management import call_command

    from config.asgi import application  # django.setup() with the real middleware

    call_command("migrate", interactive=False, verbosity=0)
    return application


def _seed() -> tuple[str, int]:
    """The bench user's access token and the run ``GET /runs/{id}`` reads (seeded once)."""
    from django.utils import timezone

    from accounts.models import User
    from accounts.services import session_start
    from pipeline.models import (
        BaselineTest,
        PlanTask,
        Run,
        RunDelivery,
        RunImport,
        Step,
        TaskMessage,
    )
    from projects.models import Artifact, Project

    user, _ = User.objects.get_or_create(email=EMAIL, defaults={"username": "request-cpu"})
    for index in range(PROJECTS - Project.objects.filter(owner=user).count()):
        Project.objects.create(owner=user, name=f"Bench {index}", description="request cpu")
    _, pair = session_start(user=user, ip="127.0.0.1", user_agent="bench/request_cpu")
    project = Project.objects.filter(owner=user).order_by("id").first()
    assert project is not None
    run = Run.objects.filter(project=project, kind=Run.Kind.GENERATE).first()
    if run is not None:
        return str(pair.access), run.pk

    now = timezone.now()
    imported = Run.objects.create(
        project=project, created_by=user, kind=Run.Kind.IMPORT, prompt="import", status="completed"
    )
    RunImport.objects.create(
        run=imported,
        source="git",
        url="https://example.com/repo.git",
        commit="a" * 40,
        files=12,
        bytes=4000,
        baseline_status="passed",
        baseline_command="pytest",
        baseline_counts={"passed": 30, "failed": 0},
        imported_at=now,
    )
    BaselineTest.objects.bulk_create(
        BaselineTest(run=imported, test_id=f"tests/test_m.py::test_{i}", outcome="passed")
        for i in range(30)
    )
    run = Run.objects.create(
        project=project,
        created_by=user,
        prompt="Add a CLI",
        status="completed",
        base_run=imported,
        tokens_in=12000,
        tokens_out=3400,
        cost_usd=Decimal("0.123456"),
        started_at=now,
        finished_at=now,
        approved_at=now,
        stages={"design": "succeeded", "coding": "succeeded", "integrate": "succeeded"},
        design={
            "approved_round": 2,
            "summary": "A small CLI",
            "package": "cli",
            "components": [{"name": "main", "files": ["cli/main.py"]}],
            "tech_choices": ["argparse"],
            "edits": [{"by": {"id": user.pk, "email": EMAIL}, "at": "x", "changes": ["a"]}],
        },
        traceparent="00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
    )
    for number in (1, 2):
        Step.objects.create(
            run=run,
            role="architect",
            key=f"design:{number}:architect",
            round=number,
            status="succeeded",
            output={"summary": f"proposal {number}", "resolutions": ["ok"]},
        )
        Step.objects.create(
            run=run,
            role="planner",
            key=f"design:{number}:planner",
            round=number,
            status="succeeded",
            output={"approved": number == 2, "objections": [] if number == 2 else ["vague"]},
        )
    tasks = [
        PlanTask.objects.create(
            run=run,
            key=f"t{i}",
            title=f"Task {i}",
            layer=i // 2,
            depends_on=[f"t{i - 2}"] if i >= 2 else [],
            files=[f"cli/m{i}.py"],
            status="succeeded",
        )
        for i in range(6)
    ]
    for task in tasks:
        for attempt in (1, 2):
            coder = Step.objects.create(
                run=run,
                role="coder",
                key=f"task:{task.key}:coder:{attempt}",
                plan_task=task,
                attempt=attempt,
                status="succeeded",
                output={"files": [f"cli/{task.key}.py"]},
            )
            regressions = ["tests/test_m.py::test_1"] if attempt == 1 else []
            Step.objects.create(
                run=run,
                role="tester",
                key=f"task:{task.key}:tester:{attempt}",
                plan_task=task,
                attempt=attempt,
                status="succeeded",
                output={"passed": attempt == 2, "regressions": regressions},
            )
        TaskMessage.objects.create(
            run=run, plan_task=task, author=user, text="Use argparse", step=coder
        )
    Step.objects.create(
        run=run,
        role="tester",
        key="integrate:suite:1",
        attempt=1,
        status="succeeded",
        output={"passed": True, "regressions": []},
    )
    RunDelivery.objects.create(
        run=run, branch="aiflow/run", requested_by=user, requested_at=now, state="delivered"
    )
    for tree, paths in ((imported, range(12)), (run, range(3, 16))):
        Artifact.objects.bulk_create(
            Artifact(
                project=project,
                run=tree,
                path=f"cli/m{i}.py",
                sha256=f"{i:064x}" if tree is imported or i % 3 else f"{i + 100:064x}",
                size=100,
                storage_key=f"bench/{tree.pk}/{i}",
            )
            for i in paths
        )
    return str(pair.access), run.pk


def _existing(run_id: int) -> tuple[str, int]:
    """An access token of the creator of run ``run_id``, and the run: ``--run``."""
    from accounts.services import session_start
    from pipeline.models import Run

    run = Run.objects.select_related("created_by").get(pk=run_id)
    if run.created_by is None:
        raise SystemExit(f"run {run_id} has no creator to read it as")
    _, pair = session_start(user=run.created_by, ip="127.0.0.1", user_agent="bench/request_cpu")
    return str(pair.access), run.pk


def _servers_cpu() -> float:
    """CPU seconds used so far by the machine's PostgreSQL and Redis servers together."""
    from bench.database import servers_cpu

    return sum(servers_cpu().values())


class _InlineExecutor(Executor):
    """Runs each call at once in the calling thread: with ``--profile``, the request's sync
    chain then runs where cProfile looks (it only sees the thread it was enabled in)."""

    def submit(self, fn: Any, /, *args: Any, **kwargs: Any) -> Future:
        future: Future = Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except BaseException as exc:  # noqa: BLE001 - handed to the awaiting coroutine
            future.set_exception(exc)
        return future


class _Statements:
    """Counts the statements every database connection of the process sends."""

    def __init__(self) -> None:
        self.count = 0
        self._lock = threading.Lock()

    def wrapper(self, execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        with self._lock:
            self.count += 1
        return execute(sql, params, many, context)

    def install(self) -> None:
        from django.db.backends.signals import connection_created

        def wrap(sender: Any = None, connection: Any = None, **_: Any) -> None:
            if self.wrapper not in connection.execute_wrappers:
                connection.execute_wrappers.append(self.wrapper)

        connection_created.connect(wrap, weak=False)


async def _get(application: Any, path: str, token: str) -> tuple[int, bytes]:
    """One GET through the ASGI application: its status and body."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [
            (b"host", b"127.0.0.1:8000"),
            (b"authorization", f"Bearer {token}".encode()),
            (b"accept", b"application/json"),
        ],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
    }
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await application(scope, receive, send)
    status = next(m["status"] for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return status, body


async def _measure(
    application: Any, path: str, token: str, args: argparse.Namespace, statements: _Statements
) -> dict[str, Any]:
    for _ in range(args.warmup):
        status, body = await _get(application, path, token)
        if status != 200:
            raise SystemExit(f"GET {path}: {status} {body[:300]!r}")
    profiler = cProfile.Profile(time.thread_time) if args.profile else None
    if profiler:
        from config.asgi import django_asgi_app

        django_asgi_app.executor = _InlineExecutor()  # type: ignore[assignment]
    counted = statements.count
    cpu, wall, servers = time.process_time(), time.perf_counter(), _servers_cpu()
    if profiler:
        profiler.enable()
    statuses = [(await _get(application, path, token))[0] for _ in range(args.requests)]
    if profiler:
        profiler.disable()
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    servers = _servers_cpu() - servers
    if set(statuses) != {200}:
        raise SystemExit(f"GET {path}: answers {sorted(set(statuses))}")
    figures = {
        "cpu_ms_per_request": round(cpu * 1000 / args.requests, 3),
        "wall_ms_per_request": round(wall * 1000 / args.requests, 3),
        "servers_cpu_ms_per_request": round(servers * 1000 / args.requests, 3),
        "statements_per_request": round((statements.count - counted) / args.requests, 2),
    }
    if profiler:
        args.profile.parent.mkdir(parents=True, exist_ok=True)
        target = args.profile.with_name(f"{args.profile.stem}-{path.split('/')[1]}.prof")
        profiler.dump_stats(target)
        print(f"\n--- GET {path}: {target}")
        pstats.Stats(profiler).sort_stats("cumulative").print_stats(60)
        pstats.Stats(profiler).sort_stats("tottime").print_stats(40)
    return figures


async def _main(application: Any, args: argparse.Namespace) -> None:
    from asgiref.sync import sync_to_async

    if args.run:
        token, run_id = await sync_to_async(_existing)(args.run)
    else:
        token, run_id = await sync_to_async(_seed)()
    statements = _Statements()
    statements.install()
    paths = {"projects": "/projects", "runs": f"/runs/{run_id}"}
    chosen = list(paths) if args.path == "both" else [args.path]
    rows = {
        paths[name]: await _measure(application, paths[name], token, args, statements)
        for name in chosen
    }
    if args.dump:
        bodies = {}
        for name in chosen:
            _, body = await _get(application, paths[name], token)
            bodies[name] = json.loads(body)
        args.dump.parent.mkdir(parents=True, exist_ok=True)
        args.dump.write_text(json.dumps(bodies, indent=2) + "\n")
    print("path | CPU ms/request | wall ms/request | statements/request | servers' CPU ms/request")
    print("--- | --- | --- | --- | ---")
    for path, figures in rows.items():
        print(
            f"GET {path} | {figures['cpu_ms_per_request']} | {figures['wall_ms_per_request']}"
            f" | {figures['statements_per_request']} | {figures['servers_cpu_ms_per_request']}"
        )
    print("(servers: every PostgreSQL and Redis process on the machine, meaningful when quiet)")
    print(f"\n{args.requests} requests each after {args.warmup} untimed; root {args.root}")


def main() -> int:
    args = _args()
    application = _setup(args)
    asyncio.run(_main(application, args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
