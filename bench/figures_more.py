"""The figures issue 21 added to ``make bench``: memory, statements, servers, load.

- ``figure_memory``: the proportional memory (PSS) of every process of the stack, at idle
  and at the peak of 50 runs at once (``bench.memory``).
- ``statements_*``: SQL statements per run, counted in every process of the stack
  (``common.statements``, switched on by ``BENCH_COUNT_STATEMENTS``).
- ``figure_asgi``: the same application under other ASGI servers, a side table.
- ``figure_loaded``: the hop and the event latency while sandboxed runs are in flight.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any

from . import event_latency, memory, wrk
from .figures import SETTLE_SECONDS, Bench
from .platform_trace import run_trace
from .report import Row, fmt
from .shape import traces_summary
from .stack import free_port, wait_listening, wait_runs

# The processes of ``make up`` (the Procfile), whose memory the stack's figure sums.
STACK_ROLES = ("web", "worker_llm", "worker_sandbox", "beat", "flower")


# --- memory --------------------------------------------------------------------------------


def stack_roots(bench: Bench) -> dict[str, int]:
    """Role -> root pid of the Procfile's processes that are running."""
    return {
        role: process.pid
        for role, process in list(bench.stack.processes.items())
        if role in STACK_ROLES and process.poll() is None
    }


def _memory_note(found: dict[str, memory.RoleMemory]) -> str:
    return "; ".join(
        f"{role} {found[role].pss_mb:.0f} MB in {found[role].processes}"
        for role in STACK_ROLES
        if role in found
    )


def figure_memory_idle(bench: Bench, settle: float = 10) -> list[Row]:
    """8. The stack's PSS once started and quiet."""
    time.sleep(settle)
    found = memory.stack_memory(stack_roots(bench))
    total = memory.total_pss_mb(found)
    rss = sum(role.rss_mb for role in found.values())
    bench.details["memory_idle"] = {
        "pss_mb": round(total, 1),
        "rss_mb": round(rss, 1),
        "roles": memory.as_table(found),
    }
    processes = sum(role.processes for role in found.values())
    return [
        Row(
            "8",
            "stack memory at idle: PSS (RSS)",
            ours=f"{total:.0f} MB ({rss:.0f} MB)",
            target="< 700 MB",
            note=f"{processes} processes, {settle:.0f} s after start: {_memory_note(found)}",
        )
    ]


def memory_peak_row(bench: Bench, sampler: memory.Sampler, runs: int) -> Row:
    """8. The stack's PSS at its peak while ``runs`` ran (sampled by ``sampler``)."""
    bench.details["memory_peak"] = {
        "runs": runs,
        "pss_mb": round(sampler.peak_mb, 1),
        "roles": memory.as_table(sampler.peak),
    }
    return Row(
        "8",
        f"stack memory at its peak during {runs} runs at once: PSS",
        ours=f"{sampler.peak_mb:.0f} MB",
        note=f"sampled every {sampler.interval} s: {_memory_note(sampler.peak)}",
    )


# --- statements per run --------------------------------------------------------------------


def statements_snapshot() -> dict[str, int]:
    """Every process's statement counts so far (by run id, and ``other``)."""
    from common.statements import statements_read
    from providers.redis_client import get_redis

    return statements_read(get_redis())


def statements_per_run(
    before: dict[str, int], after: dict[str, int], run_ids: list[int]
) -> dict[str, float]:
    """Statements per run: in the runs' own tasks, and elsewhere meanwhile (web requests,
    beat, tasks of no run), both divided by the number of runs."""
    own = sum(after.get(str(run_id), 0) - before.get(str(run_id), 0) for run_id in run_ids)
    other = after.get("other", 0) - before.get("other", 0)
    runs = max(1, len(run_ids))
    return {"in_tasks": own / runs, "elsewhere": other / runs, "total": (own + other) / runs}


# --- other ASGI servers --------------------------------------------------------------------


@dataclass
class ServerRow:
    """One line of the ASGI side table."""

    server: str
    path: str
    latency: str = ""
    rps: str = ""
    cpu: str = ""
    note: str = ""


SERVER_COLUMNS = {
    "server": "server",
    "path": "request",
    "latency": "p50 / p99",
    "rps": "req/s",
    "cpu": "CPU per request",
    "note": "note",
}


def _server_commands(port: int, processes: int) -> dict[str, str]:
    app = "config.asgi:application"
    return {
        "uvicorn (httptools, uvloop)": (
            f"exec python -m uvicorn {app} --host 127.0.0.1 --port {port} "
            f"--workers {processes} --http httptools --loop uvloop --lifespan off "
            "--no-access-log --log-level warning"
        ),
        "granian": (
            f"exec granian --interface asginl --host 127.0.0.1 --port {port} "
            f"--workers {processes} --loop uvloop --log-level warning {app}"
        ),
    }


def _load(bench: Bench, role: str, url: str, *, connections: int, seconds: int) -> dict[str, Any]:
    """Settle, warm up, then ``wrk``; with the CPU the server's processes spent per request."""
    time.sleep(SETTLE_SECONDS)
    wrk.load(url, connections=connections, seconds=2, token=bench.api.token)
    cpu_before = bench.stack.cpu_seconds((role,))
    result = wrk.load(url, connections=connections, seconds=seconds, token=bench.api.token)
    cpu = bench.stack.cpu_seconds((role,)) - cpu_before
    requests = result.get("requests") or 0
    result["cpu_ms_per_request"] = cpu * 1000 / requests if requests else None
    return result


def api_load(bench: Bench, url: str, *, connections: int, seconds: int) -> dict[str, Any]:
    """One path of the stack's own web tier (daphne), loaded as the side table's servers are."""
    return _load(bench, "web", url, connections=connections, seconds=seconds)


def figure_asgi(
    bench: Bench, paths: list[tuple[str, str]], daphne: dict[str, dict[str, Any]], *,
    connections: int, seconds: int, processes: int,
) -> list[ServerRow]:  # fmt: skip
    """5b. The same application, database and Redis under uvicorn and granian.

    ``daphne``: the stack's own figures for the same paths (label -> wrk result).
    """
    rows = [_server_row("daphne (make up)", label, daphne[label]) for label, _ in paths]
    details: dict[str, Any] = {"daphne (make up)": daphne}
    if not wrk.available():
        return rows
    for server in _server_commands(0, processes):
        port = free_port()
        command = _server_commands(port, processes)[server]
        role = "asgi_" + server.split()[0]
        process = bench.stack.start(role, command=command, AIFLOW_PORT=str(port))
        try:
            wait_listening(port, process, timeout=90)
            results = {}
            for label, path in paths:
                result = _load(
                    bench, role, f"http://127.0.0.1:{port}{path}",
                    connections=connections, seconds=seconds,
                )  # fmt: skip
                results[label] = result
                rows.append(_server_row(server, label, result))
            details[server] = results
        except Exception as exc:  # a figure, never a failure of the whole bench
            rows.append(ServerRow(server, "-", note=f"error: {type(exc).__name__}: {exc}"[:120]))
        finally:
            bench.stack.stop(role, timeout=30)
    bench.details["asgi_servers"] = {"processes": processes, **details}
    return rows


def _server_row(server: str, label: str, result: dict[str, Any]) -> ServerRow:
    bad = result.get("non_2xx", 0) + result.get("socket_errors", 0)
    return ServerRow(
        server,
        label,
        latency=f"{fmt(result.get('p50'))} / {fmt(result.get('p99'))} ms",
        rps=fmt(result.get("rps"), "", 0),
        cpu=fmt(result.get("cpu_ms_per_request"), " ms", 2),
        note=f"{bad} non-2xx or socket errors" if bad else "",
    )


# --- hops and events under load ------------------------------------------------------------


class _Load:
    """Keeps ``runs`` sandboxed runs in flight until stopped; the ids of all it started."""

    def __init__(self, bench: Bench, runs: int) -> None:
        self.bench, self.runs = bench, runs
        self.started: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="bench-load", daemon=True)

    def _loop(self) -> None:
        from django.db import connection

        from pipeline.models import Run

        try:
            in_flight: set[int] = set()
            while not self._stop.is_set():
                if in_flight:
                    finished = Run.objects.filter(id__in=in_flight, status__in=Run.FINISHED)
                    in_flight -= set(finished.values_list("id", flat=True))
                while len(in_flight) < self.runs and not self._stop.is_set():
                    run_id = self.bench.api.generate(
                        self.bench.project_id, f"A note taker with search, load {len(self.started)}"
                    )
                    self.started.append(run_id)
                    in_flight.add(run_id)
                self._stop.wait(0.2)
        finally:
            connection.close()

    def __enter__(self) -> _Load:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()


def figure_loaded(bench: Bench, *, runs: int, events: int) -> list[Row]:
    """7. Hop and event latency while ``runs`` sandboxed runs are always in flight.

    The hops are those of the runs that started and finished inside the window (their
    critical chains pooled); the events are published to one SSE and one WebSocket client
    of a run parked at the approval gate, as in figure 4.
    """
    from pipeline.models import Run

    parked = Run.objects.create(
        project_id=bench.project_id,
        created_by_id=bench.api_user_id(),
        prompt="bench: event latency under load",
        status=Run.Status.AWAITING_APPROVAL,
    )
    with _Load(bench, runs) as load:
        time.sleep(3)  # the first runs are under way
        events_result = event_latency.measure(
            base_url=bench.stack.base_url,
            token=bench.api.token,
            run_id=parked.id,
            clients=1,
            events=events,
            interval=0.1,
        )
        window_end = time.time()
    done = wait_runs(load.started, timeout=600)
    inside = [
        run
        for run in done.values()
        if run.status == "completed"
        and run.finished_at is not None
        and run.finished_at.timestamp() <= window_end
    ]
    hops = traces_summary([run_trace(run.id) for run in inside]) if inside else None
    bench.details["loaded"] = {
        "runs_in_flight": runs,
        "runs_started": len(load.started),
        "runs_measured": [run.id for run in inside],
        "hops": hops,
        "events": events_result,
    }
    note = (
        f"{runs} sandboxed runs always in flight; hops of the {len(inside)} that ran within "
        f"the window, pooled"
    )
    hop = hops["hops_ms"] if hops else {}
    rows = [
        Row(
            "7",
            "under load: hop overhead on the critical path, p50 / p99",
            ours=f"{fmt(hop.get('p50'))} / {fmt(hop.get('p99'))} ms",
            note=note,
        )
    ]
    for transport, label in (("sse", "SSE"), ("ws", "WebSocket")):
        figures = events_result[transport]
        lost = figures["expected"] - figures["received"]
        rows.append(
            Row(
                "7",
                f"under load: event publish -> {label}, 1 client: p50 / p99",
                ours=f"{fmt(figures['p50'])} / {fmt(figures['p99'])} ms",
                target="p99 < 20 ms",
                note=f"{events} events 0.1 s apart while {runs} sandboxed runs ran"
                + (f"; {lost} events not received" if lost else ""),
            )
        )
    return rows
