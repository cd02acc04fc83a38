"""Figure 3 of ``make bench``: runs at once, their makespan against one run's, and what each
costs (the workers' CPU, the whole machine's with PostgreSQL's and Redis's part, statements,
connections), beside the same shape run by LangGraph and by a bare Celery canvas."""

from __future__ import annotations

import os
import time
from typing import Any

from . import peers
from .database import servers_cpu, sessions_started
from .figures import WORKER_ROLES, Bench
from .platform_trace import default_plan_shape, run_counts
from .report import Row, fmt, ratio
from .stack import machine_busy_seconds, wait_runs


def _cpu_source(bench: Bench) -> str:
    """How the workers' CPU was counted, for the figure's note."""
    if all(bench.stack.cpu_groups.get(role) is not None for role in WORKER_ROLES):
        return ", sandboxes included (cpuacct cgroups)"
    return " (from /proc: sandboxed processes reaped by bwrap are missed)"


def _concurrent(bench: Bench, runs: int, prompt: str) -> dict[str, Any]:
    """``runs`` runs started at once through the API: makespan, outcome, CPU seconds, and
    (when the stack counts them) SQL statements per run."""
    from .figures_more import statements_per_run, statements_snapshot

    statements_before = statements_snapshot() if bench.count_statements else {}
    cpu_before = bench.stack.cpu_seconds(WORKER_ROLES)
    web_before = bench.stack.cpu_seconds(("web",))
    roles_before = {role: bench.stack.cpu_seconds((role,)) for role in WORKER_ROLES}
    busy_before, servers_before = machine_busy_seconds(), servers_cpu()
    sessions_before = sessions_started(bench.stack.db_name)
    started = time.time()
    ids = [bench.api.generate(bench.project_id, f"{prompt}, variant {n}") for n in range(runs)]
    rows = wait_runs(ids, timeout=max(600, 30 * runs))
    ends = [r.finished_at.timestamp() for r in rows.values() if r.finished_at is not None]
    makespan = (max(ends) if ends else time.time()) - started
    statuses: dict[str, int] = {}
    for row in rows.values():
        statuses[row.status] = statuses.get(row.status, 0) + 1
    cpu = bench.stack.cpu_seconds(WORKER_ROLES) - cpu_before
    web = bench.stack.cpu_seconds(("web",)) - web_before
    servers = {name: used - servers_before[name] for name, used in servers_cpu().items()}
    busy = machine_busy_seconds() - busy_before
    time.sleep(1)  # the last tasks' counts reach Redis as they end, PostgreSQL's its statistics
    statements = None
    if bench.count_statements:
        statements = statements_per_run(statements_before, statements_snapshot(), ids)
    return {
        "statements_per_run": statements,
        # Where the CPU went: each worker role, and the whole machine (PostgreSQL, Redis and
        # this process included) over the same span.
        "cpu_s_by_role": {
            role: round(bench.stack.cpu_seconds((role,)) - before, 3)
            for role, before in roles_before.items()
        },
        "machine_busy_cpu_s": round(busy, 3),
        "servers_cpu_s": {name: round(used, 3) for name, used in servers.items()},
        # Connections made to the database meanwhile (the bench's own polling included).
        "sessions": sessions_started(bench.stack.db_name) - sessions_before,
        "runs": runs,
        "makespan_s": makespan,
        "statuses": statuses,
        "runs_per_minute": runs / makespan * 60,
        "worker_cpu_s_per_run": cpu / runs,
        "web_cpu_s_per_run": web / runs,
        "counts": [run_counts(i) for i in ids[:3]],
    }


def figure_concurrency(
    bench: Bench,
    counts: list[int],
    *,
    sandbox: bool,
    latency_ms: int | None = None,
    memory_peak_of: int | None = None,
) -> list[Row]:
    """3. N runs at once on one llm worker: makespan / one run, runs per minute, CPU per run.

    ``latency_ms``: the model's latency the workers were started with, when it is not the
    bench's own (the figure then says so, and sets no target: the targets are for the bench's).
    """
    from . import memory
    from .figures_more import memory_peak_row, stack_roots

    mode = "sandbox on" if sandbox else "sandbox off"
    if latency_ms is not None and latency_ms != bench.latency_ms:
        mode += f", model {latency_ms} ms"
    results, extra_rows = [], []
    for n in counts:
        if memory_peak_of == n:  # the stack's memory at its peak while these runs run
            with memory.Sampler(lambda: stack_roots(bench)) as sampler:
                results.append(_concurrent(bench, n, "A todo list manager with tags"))
            extra_rows.append(memory_peak_row(bench, sampler, n))
        else:
            results.append(_concurrent(bench, n, "A todo list manager with tags"))
    shape = default_plan_shape(latency_ms or bench.latency_ms)
    base = results[0]["makespan_s"]
    peer_makespans: dict[str, dict[int, float]] = {"langgraph": {}, "celery": {}}
    peer_cpu: dict[str, dict[int, float]] = {"langgraph": {}, "celery": {}}
    peer_machine: dict[int, float] = {}  # the canvas's
    if not sandbox:
        for n in counts:
            lg_group = bench.stack.cpu_group_for("peer_langgraph")
            traces, cpu = peers.langgraph_run_measured(shape, runs=n, cpu_group=lg_group)
            peer_makespans["langgraph"][n] = max(t.end for t in traces) - min(
                t.begin for t in traces
            )
            peer_cpu["langgraph"][n] = cpu / n
            before = bench.stack.cpu_seconds(("peer_worker",))
            busy_before = machine_busy_seconds()
            traces = peers.celery_run(shape, runs=n)
            peer_makespans["celery"][n] = max(t.end for t in traces) - min(t.begin for t in traces)
            time.sleep(0.5)  # the last chord's bookkeeping ends after the integrator's span
            peer_cpu["celery"][n] = (bench.stack.cpu_seconds(("peer_worker",)) - before) / n
            # The whole machine's meanwhile (Redis and the driver too, the 0.5 s above).
            peer_machine[n] = (machine_busy_seconds() - busy_before) / n
    bench.details[f"concurrency_{mode.replace(',', '').replace(' ', '_')}"] = {
        "aiflow": results,
        "peers_makespan_s": peer_makespans,
        "peers_cpu_s_per_run": peer_cpu,
        "celery_machine_cpu_s_per_run": peer_machine,
    }
    rows = []
    for result in results:
        n = result["runs"]
        target = ""
        if n > 1 and "model" not in mode:
            target = "<= 1.3x" if not sandbox else "<= 2x"
        peer_cells = {}
        if not sandbox:
            peer_cells = {
                name: ratio(peer_makespans[name][n] / peer_makespans[name][counts[0]])
                for name in ("langgraph", "celery")
            }
        failed = {s: c for s, c in result["statuses"].items() if s != "completed"}
        # The makespan the machine's busy CPU alone needs, all cores kept busy throughout.
        floor = result["machine_busy_cpu_s"] / (os.cpu_count() or 1)
        rows.append(
            Row(
                "3",
                f"{n} run(s) at once, {mode}: makespan / one run",
                ours=ratio(result["makespan_s"] / base),
                target=target if n > 1 else "",
                note=f"{result['makespan_s']:.1f} s, {result['runs_per_minute']:.1f} runs/min"
                + (f", not completed: {failed}" if failed else "")
                + (
                    f"; the machine's busy CPU alone needs {ratio(floor / base)} "
                    f"on {os.cpu_count()} cores"
                    if n > 1
                    else ""
                ),
                **peer_cells,
            )
        )
        peer_cpu_cells = {}
        if not sandbox:
            peer_cpu_cells = {
                name: fmt(peer_cpu[name].get(n), " s", 3) for name in ("langgraph", "celery")
            }
        rows.append(
            Row(
                "3",
                f"{n} run(s) at once, {mode}: CPU seconds per run",
                ours=fmt(result["worker_cpu_s_per_run"], " s", 3),
                target="<= 3 s (3 tasks)" if sandbox else "",
                note=(
                    f"workers and beat{_cpu_source(bench)}; "
                    f"web {result['web_cpu_s_per_run']:.3f} s per run"
                    + ("" if sandbox else "; peers: their worker / their process, same cgroups")
                ),
                **peer_cpu_cells,
            )
        )
        servers = result["servers_cpu_s"]
        rows.append(
            Row(
                "3",
                f"{n} run(s) at once, {mode}: the machine's CPU seconds per run",
                ours=fmt(result["machine_busy_cpu_s"] / n, " s", 3),
                celery="" if sandbox else fmt(peer_machine.get(n), " s", 3),
                note=(
                    "every process on the machine (/proc/stat) over the makespan, the bench's "
                    f"own included; PostgreSQL {servers['postgres'] / n:.3f} s, "
                    f"Redis {servers['redis-server'] / n:.3f} s per run; "
                    f"{result['sessions']} connection(s) made to PostgreSQL"
                ),
            )
        )
        statements = result["statements_per_run"]
        if statements is not None and n == counts[0]:
            rows.append(
                Row(
                    "3",
                    f"{n} run(s) at once, {mode}: SQL statements per run",
                    ours=f"{statements['total']:.0f}",
                    note=(
                        f"{statements['in_tasks']:.0f} in the run's tasks, "
                        f"{statements['elsewhere']:.0f} elsewhere meanwhile (web, beat); "
                        "counted in every process (BENCH_COUNT_STATEMENTS), BEGIN/COMMIT not"
                    ),
                )
            )
    return rows + extra_rows
