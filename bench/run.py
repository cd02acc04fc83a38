#!/usr/bin/env python
"""`make bench`: one run on the real stack, one table, ``bench/results/latest.json``.

Starts the Procfile's processes (daphne web, the llm and sandbox workers, beat, Flower) on
a database of its own (``aiflow_bench``, dropped and recreated) and Redis db 8, with the
offline model at ``BENCH_LATENCY_MS`` per call and a seeded spread, plus the bare Celery
peer's worker; then measures the figure groups of issues 14 and 21 (``bench.figures``,
``bench.concurrency``, ``bench.figures_more``): hops, uneven DAGs, concurrent runs with CPU
and SQL statements per run (the peers' CPU beside ours, counted the same way), event latency,
API load with CPU per request, the stack's memory (PSS) at idle and at its peak, and hops and
events while sandboxed runs are in flight; runs the same shapes in LangGraph and as a bare
Celery canvas, and the same application under other ASGI servers (a side table); prints the
tables and writes the JSON file. Figures, not assertions: it exits 0 whatever the numbers are, and
non-zero only when the stack could not be run.

Environment (all optional): BENCH_LATENCY_MS (200), BENCH_SPREAD (0.25: latencies vary up
to 25% either way), BENCH_SEED (14), BENCH_CONCURRENCY ("1,10,50"), BENCH_SANDBOX_CONCURRENCY
("1,10"), BENCH_EVENT_CLIENTS ("1,50"), BENCH_EVENTS (200), BENCH_WRK_CONNECTIONS (50),
BENCH_WRK_SECONDS (10), BENCH_TOKEN_SIZES ("3,10,20,30"), BENCH_ONLY (comma list of figure
groups 1-6 to run), BENCH_DB (aiflow_bench), BENCH_REDIS_URL (redis://127.0.0.1:6379/8),
BENCH_OUTPUT (bench/results/latest.json), BENCH_HOP_RUNS (5: runs of figure 1, hops pooled),
BENCH_SLOW_MODEL_MS (1000: figure 3 again, sandbox off, with the model this slow; 0 skips it),
BENCH_LOAD_RUNS (2: sandboxed runs kept in flight in figure 7), BENCH_ASGI_SERVERS (1: the
side table of other ASGI servers; 0 skips it).
"""

from __future__ import annotations

import os
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[0] = str(ROOT)  # not bench/: its modules must not shadow the standard library

from bench import report  # noqa: E402
from bench.report import Row, SideTable  # noqa: E402
from bench.stack import Stack, django_setup  # noqa: E402
from bench.termination import stop_on_termination  # noqa: E402
from config.llm_worker import plan_for_env  # noqa: E402


def _ints(name: str, default: str) -> list[int]:
    return [int(v) for v in os.environ.get(name, default).split(",") if v.strip()]


LATENCY_MS = int(os.environ.get("BENCH_LATENCY_MS", "200"))
SPREAD = float(os.environ.get("BENCH_SPREAD", "0.25"))
SEED = int(os.environ.get("BENCH_SEED", "14"))
ONLY = set(_ints("BENCH_ONLY", "1,2,3,4,5,6,7,8"))
SLOW_MODEL_MS = int(os.environ.get("BENCH_SLOW_MODEL_MS", "1000"))
OUTPUT = Path(os.environ.get("BENCH_OUTPUT", ROOT / "bench" / "results" / "latest.json"))


def main() -> int:
    stack = Stack(
        name="bench",
        db_name=os.environ.get("BENCH_DB", "aiflow_bench"),
        redis_url=os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/8"),
        env_extra={
            "OFFLINE_LATENCY_MS": str(LATENCY_MS),
            "SANDBOX_TESTS_ENABLED": "false",
            "BENCH_COUNT_STATEMENTS": "true",
        },
    )
    stack.env_extra["DJANGO_CSRF_TRUSTED_ORIGINS"] = stack.base_url
    print(
        f"bench: offline model {LATENCY_MS} ms per call, spread {SPREAD:.0%}, seed {SEED}; "
        f"database {stack.db_name}, Redis {stack.redis_url}, logs in var/bench/bench/",
        flush=True,
    )
    started, speed = time.monotonic(), report.reference_loop_us()
    stack.prepare_database()
    django_setup(stack)
    from bench import concurrency, figures, figures_more
    from bench.stack import Api

    connections = int(os.environ.get("BENCH_WRK_CONNECTIONS", "50"))
    rows: list[Row] = []
    server_rows: list[figures_more.ServerRow] = []
    failures: dict[str, str] = {}
    try:
        stack.start_all(figures_more.STACK_ROLES)
        stack.start_peer_worker()
        bench = figures.Bench(
            stack=stack,
            api=Api(stack),
            latency_ms=LATENCY_MS,
            spread=SPREAD,
            seed=SEED,
            count_statements=True,
        )

        def step(group: int, label: str, make: Callable[[], list[Row]]) -> None:
            if group not in ONLY:
                return
            print(f"bench: {group}. {label} ...", flush=True)
            t0 = time.monotonic()
            try:
                made = make()
            except Exception as exc:
                traceback.print_exc()
                failures[label] = f"{type(exc).__name__}: {exc}"
                made = [Row(str(group), label, ours=f"error: {type(exc).__name__}: {exc}"[:120])]
            rows.extend(made)
            print(f"bench: {group}. done in {time.monotonic() - t0:.0f} s", flush=True)

        step(8, "the stack's memory at idle", lambda: figures_more.figure_memory_idle(bench))
        step(1, "hops, 12 tasks in 3 layers", lambda: figures.figure_hops(bench))
        step(2, "uneven latencies", lambda: figures.figure_uneven(bench))
        step(
            6,
            "prompt tokens",
            lambda: figures.figure_tokens(bench, _ints("BENCH_TOKEN_SIZES", "3,10,20,30")),
        )
        step(
            3,
            "concurrent runs, sandbox off",
            lambda: concurrency.figure_concurrency(
                bench,
                _ints("BENCH_CONCURRENCY", "1,10,50"),
                sandbox=False,
                memory_peak_of=max(_ints("BENCH_CONCURRENCY", "1,10,50")) if 8 in ONLY else None,
            ),
        )
        step(
            4,
            "event latency",
            lambda: figures.figure_events(
                bench,
                _ints("BENCH_EVENT_CLIENTS", "1,50"),
                int(os.environ.get("BENCH_EVENTS", "200")),
            ),
        )
        step(
            5,
            "API load",
            lambda: figures.figure_api(
                bench,
                connections=connections,
                seconds=int(os.environ.get("BENCH_WRK_SECONDS", "10")),
            ),
        )
        if 5 in ONLY and int(os.environ.get("BENCH_ASGI_SERVERS", "1")) and "api" in bench.details:
            print("bench: 5. the same application under other ASGI servers ...", flush=True)
            try:
                server_rows = figures_more.figure_asgi(
                    bench,
                    bench.details["api_paths"],
                    bench.details["api"],
                    connections=connections,
                    seconds=int(os.environ.get("BENCH_WRK_SECONDS", "10")),
                    processes=int(os.environ.get("WEB_PROCESSES") or 0) or os.cpu_count() or 1,
                )
            except Exception as exc:
                traceback.print_exc()
                failures["ASGI servers"] = f"{type(exc).__name__}: {exc}"
        if 3 in ONLY and SLOW_MODEL_MS:
            # The same runs with a model as slow as real ones are: is the platform's own CPU
            # still what limits many runs at once, or the model?
            stack.stop("worker_llm")
            stack.start("worker_llm", OFFLINE_LATENCY_MS=str(SLOW_MODEL_MS))
            stack.wait_workers(["worker_llm"])
            most = max(_ints("BENCH_CONCURRENCY", "1,10,50"))
            step(
                3,
                f"concurrent runs, sandbox off, model {SLOW_MODEL_MS} ms",
                lambda: concurrency.figure_concurrency(
                    bench, [1, most], sandbox=False, latency_ms=SLOW_MODEL_MS
                ),
            )
        if 3 in ONLY or 7 in ONLY:
            print("bench: restarting the workers with the sandbox on ...", flush=True)
            for role in ("worker_llm", "worker_sandbox"):
                stack.stop(role)
            stack.env_extra["SANDBOX_TESTS_ENABLED"] = "true"
            for role in ("worker_llm", "worker_sandbox"):
                stack.start(role)
            stack.wait_workers(["worker_llm", "worker_sandbox"])
        step(
            3,
            "concurrent runs, sandbox on",
            lambda: concurrency.figure_concurrency(
                bench, _ints("BENCH_SANDBOX_CONCURRENCY", "1,10"), sandbox=True
            ),
        )
        step(
            7,
            "hops and events while sandboxed runs are in flight",
            lambda: figures_more.figure_loaded(
                bench,
                runs=int(os.environ.get("BENCH_LOAD_RUNS", "2")),
                events=int(os.environ.get("BENCH_EVENTS", "200")),
            ),
        )
        details = bench.details
    finally:
        stack.close()
    rows.sort(key=lambda row: int(row.group) if row.group.isdigit() else 99)
    llm_plan = plan_for_env(stack.env())
    title = (
        f"make bench: offline model {LATENCY_MS} ms per call (spread {SPREAD:.0%}, seed {SEED}), "
        f"llm worker {sum(threads for _, threads in llm_plan)} threads in {len(llm_plan)} "
        "process(es)"
    )
    processes = int(os.environ.get("WEB_PROCESSES") or 0) or os.cpu_count() or 1
    result = report.write(
        OUTPUT,
        title=title,
        rows=rows,
        speed=(speed, report.reference_loop_us()),
        details={**details, "failures": failures, "seconds": time.monotonic() - started},
        side_tables=[
            SideTable(
                f"The same application, database and Redis under other ASGI servers "
                f"({processes} processes each, {connections} connections, wrk; CPU: the "
                "server's processes, cgroup):",
                server_rows,
                figures_more.SERVER_COLUMNS,
            )
        ],
    )
    print()
    print(result["markdown"])
    shown = OUTPUT.relative_to(ROOT) if OUTPUT.is_relative_to(ROOT) else OUTPUT
    print(f"written to {shown} and {shown.with_suffix('.md')}")
    return 0


if __name__ == "__main__":
    stop_on_termination()
    sys.exit(main())
