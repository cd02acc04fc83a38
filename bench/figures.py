"""The six figure groups of ``make bench``, each a function returning its table rows.

Every function takes the ``Bench`` (the running stack, a signed-in user, the stated model
latency and seed) and records its raw numbers in ``bench.details`` for the JSON file.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import Any

from . import event_latency, offline_dag, peers, wrk
from .database import servers_cpu, sessions_started
from .platform_trace import default_plan_shape, run_counts, run_trace
from .report import NOT_AVAILABLE, Row, fmt, ratio
from .shape import Shape, layered_shape, trace_summary, traces_summary, uneven_shape
from .stack import Api, Stack, machine_busy_seconds, wait_runs

# Seconds of idle before a latency figure: the previous figure's aftermath (its last runs,
# its load) settles, so that each figure measures its own steady state.
SETTLE_SECONDS = 5
# Runs of figure 1's shape, one after the other: one critical chain has only a dozen hops.
HOP_RUNS = int(os.environ.get("BENCH_HOP_RUNS", "5"))
WORKER_ROLES = ("worker_llm", "worker_sandbox", "beat")


@dataclass
class Bench:
    """What every figure needs: the stack, a user, the model's latency, the seed."""

    stack: Stack
    api: Api
    latency_ms: int
    spread: float
    seed: int
    details: dict[str, Any] = field(default_factory=dict)
    project_id: int = 0
    # The stack counts SQL statements (BENCH_COUNT_STATEMENTS; common.statements).
    count_statements: bool = False

    def __post_init__(self) -> None:
        self.project_id = self.api.project("bench")

    def api_user_id(self) -> int:
        from accounts.models import User

        return int(User.objects.values_list("id", flat=True).get(email=self.api.email))

    def run_one(self, prompt: str, *, timeout: float = 600) -> Any:
        """Start a run through the API and wait for it; its row."""
        run_id = self.api.generate(self.project_id, prompt)
        return wait_runs([run_id], timeout=timeout)[run_id]


def _peer_summaries(shape: Shape, runs: int = 1) -> dict[str, dict[str, Any] | None]:
    """Each peer runs ``shape`` ``runs`` times, one after the other (as ours does)."""
    return {
        name: traces_summary([runner(shape)[0] for _ in range(runs)], shape)
        for name, runner in (("langgraph", peers.langgraph_run), ("celery", peers.celery_run))
    }


def _hop_rows(group: str, ours: dict[str, Any] | None, peer: dict[str, Any], note: str) -> list:
    def get(summary: dict[str, Any] | None, *path: str) -> Any:
        value: Any = summary
        for key in path:
            value = None if value is None else value.get(key)
        return value

    def cells(*path: str, unit: str = "ms", as_ratio: bool = False) -> dict[str, str]:
        def show(summary: dict[str, Any] | None) -> str:
            value = get(summary, *path)
            return ratio(value) if as_ratio else fmt(value, f" {unit}")

        return {
            "ours": show(ours) if ours is not None else NOT_AVAILABLE,
            "langgraph": show(peer["langgraph"]),
            "celery": show(peer["celery"]),
        }

    def ends(summary: dict[str, Any] | None) -> str:
        if summary is None:
            return NOT_AVAILABLE
        return f"{fmt(summary['start_ms'])} / {fmt(summary['finish_ms'])} ms"

    return [
        Row(group, "hop overhead on the critical path, p50", **cells("hops_ms", "p50"),
            target="< 15 ms", note=note),
        Row(group, "hop overhead on the critical path, max", **cells("hops_ms", "max")),
        Row(group, "request -> first call / last call -> done", ours=ends(ours),
            langgraph=ends(peer["langgraph"]), celery=ends(peer["celery"])),
        Row(group, "wall time / model critical path",
            **cells("wall_over_critical_path", as_ratio=True)),
    ]  # fmt: skip


def figure_hops(bench: Bench) -> list[Row]:
    """1. Orchestration overhead per hop and wall / critical path, 12 tasks in 3 layers."""
    wanted = layered_shape(
        name="12 tasks in 3 layers",
        tasks=12,
        layers=3,
        latency_ms=bench.latency_ms,
        spread=bench.spread,
        seed=bench.seed,
    )
    if offline_dag.shape_scripting_available():
        shape, note = wanted, f"{wanted.name}, sandbox off"
        offline_dag.shape_script(shape)
    else:
        shape = default_plan_shape(bench.latency_ms)
        note = f"{shape.name} (12x3 {NOT_AVAILABLE}), sandbox off"
    try:
        runs = [bench.run_one(f"A recipe scaler for cooks, take {n}") for n in range(HOP_RUNS)]
    finally:
        offline_dag.shape_clear()
    done = [run for run in runs if run.status == "completed"]
    ours = traces_summary([run_trace(run.id) for run in done], shape)
    peer = _peer_summaries(shape, HOP_RUNS)
    bench.details["hops"] = {
        "shape": shape.as_dict(),
        "runs": [{"id": run.id, "status": run.status, "error": run.error} for run in runs],
        "aiflow": ours,
        **peer,
    }
    note += f"; {HOP_RUNS} runs one after the other, their hops pooled"
    if len(done) < len(runs):
        failed = [f"{run.status}: {run.error_code}" for run in runs if run not in done]
        note += f"; not completed: {', '.join(failed)}"
    return _hop_rows("1", ours, peer, note)


def figure_uneven(bench: Bench) -> list[Row]:
    """2. Uneven latencies: wall time against the critical path and a layer-by-layer schedule."""
    shape = uneven_shape(
        name="12 tasks in 3 layers, uneven", tasks=12, layers=3,
        latency_ms=bench.latency_ms, seed=bench.seed,
    )  # fmt: skip
    ours = None
    note = (
        f"critical path {shape.critical_path_ms() / 1000:.2f} s, layer by layer "
        f"{shape.layered_ms() / 1000:.2f} s (seed {shape.seed})"
    )
    if offline_dag.shape_scripting_available():
        offline_dag.shape_script(shape)
        try:
            run = bench.run_one("A habit tracker with streaks")
        finally:
            offline_dag.shape_clear()
        if run.status == "completed":
            ours = trace_summary(run_trace(run.id), shape)
        else:
            note += f"; run {run.status}: {run.error_code}"
    peer = _peer_summaries(shape)
    bench.details["uneven"] = {"shape": shape.as_dict(), "aiflow": ours, **peer}

    def cells(key: str) -> dict[str, str]:
        return {
            "ours": ratio(ours[key]) if ours else NOT_AVAILABLE,
            "langgraph": ratio(peer["langgraph"][key]),
            "celery": ratio(peer["celery"][key]),
        }

    return [
        Row("2", "uneven DAG: wall / critical path", **cells("wall_over_critical_path"),
            target="<= 1.10x", note=note),
        Row("2", "uneven DAG: wall / layer-by-layer schedule", **cells("wall_over_layered"),
            note="below 1 only without a layer barrier"),
    ]  # fmt: skip


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


def figure_events(bench: Bench, client_counts: list[int], events: int) -> list[Row]:
    """4. Event latency publish -> SSE client and -> WebSocket client, p50/p99."""
    from pipeline.models import Run

    run = Run.objects.create(
        project_id=bench.project_id,
        created_by_id=bench.api_user_id(),
        prompt="bench: event latency",
        status=Run.Status.AWAITING_APPROVAL,
    )
    admission = event_latency.ws_admission(bench.stack.base_url, bench.api.token, run.id)
    rows, details = [], {}
    for clients in client_counts:
        time.sleep(SETTLE_SECONDS)  # the previous figure's runs and loads settle first
        result = event_latency.measure(
            base_url=bench.stack.base_url,
            token=bench.api.token,
            run_id=run.id,
            clients=clients,
            events=events,
            interval=0.1,
        )
        details[clients] = result
        for transport, label in (("sse", "SSE"), ("ws", "WebSocket")):
            figures = result[transport]
            notes = [f"{events} events 0.1 s apart, after {SETTLE_SECONDS} s idle"]
            if transport == "ws":
                notes.append(f"admitted by {admission}")
            if figures["connected"] < clients:
                notes.append(
                    f"{clients - figures['connected']} of {clients} could not connect "
                    f"({figures['refused'][-1] if figures['refused'] else '?'})"
                )
            elif figures["refused"]:
                notes.append(f"{len(figures['refused'])} handshake(s) retried")
            if figures["received"] < figures["expected"]:
                notes.append(f"{figures['expected'] - figures['received']} events not received")
            rows.append(
                Row(
                    "4",
                    f"event publish -> {label}, {clients} client(s): p50 / p99",
                    ours=f"{fmt(figures['p50'])} / {fmt(figures['p99'])} ms",
                    target="p99 < 20 ms" if clients == 1 else "p99 < 100 ms",
                    note="; ".join(notes),
                )
            )
    bench.details["events"] = {"admission": admission, "by_clients": details}
    return rows


def figure_api(bench: Bench, *, connections: int, seconds: int) -> list[Row]:
    """5. API latency p50/p99 and requests per second at ``connections`` connections (wrk)."""
    if not wrk.available():
        return [Row("5", "API load", ours="wrk is not installed (apt-get install wrk)")]
    from pipeline.models import Run

    run_id = (
        Run.objects.filter(project_id=bench.project_id, status=Run.Status.COMPLETED)
        .values_list("id", flat=True)
        .first()
    )
    targets = [("GET /projects", "/projects", True), ("GET /health", "/health", False)]
    if run_id is not None:
        targets.insert(1, ("GET /runs/{id}", f"/runs/{run_id}", True))
    rows, details = [], {}
    for label, path, authenticated in targets:
        url, token = f"{bench.stack.base_url}{path}", bench.api.token if authenticated else None
        # Each endpoint on its own: the previous load's aftermath settles (a run of /health
        # right after /runs/{id} at 300 req/s had twice the p99 of one 5 s later), and a
        # short load at the same concurrency warms the processes up; neither is counted.
        time.sleep(SETTLE_SECONDS)
        wrk.load(url, connections=connections, seconds=2, token=token)
        cpu_before = bench.stack.cpu_seconds(("web",))
        result = wrk.load(url, connections=connections, seconds=seconds, token=token)
        cpu = bench.stack.cpu_seconds(("web",)) - cpu_before
        requests = result["requests"]
        result["cpu_ms_per_request"] = cpu * 1000 / requests if requests else None
        details[label] = result
        bad = result["non_2xx"] + result["socket_errors"]
        target = {
            "GET /projects": "p99 < 100 ms, <= 1.2 ms CPU",
            "GET /runs/{id}": "p99 < 100 ms, >= 634 req/s",
            "GET /health": "p99 < 50 ms",
        }[label]
        rows.append(
            Row(
                "5",
                f"{label}, {connections} connections: p50 / p99, req/s, CPU per request",
                ours=f"{fmt(result.get('p50'))} / {fmt(result.get('p99'))} ms, "
                f"{fmt(result['rps'], '', 0)} req/s, "
                f"{fmt(result['cpu_ms_per_request'], ' ms', 2)}",
                target=target,
                note=f"{seconds} s of wrk after {SETTLE_SECONDS} s idle and 2 s of warm-up; "
                "CPU: every web process (cgroup)"
                + (f"; {bad} non-2xx or socket errors" if bad else ""),
            )
        )
    bench.details["api"] = details
    bench.details["api_paths"] = [(label, path) for label, path, auth in targets if auth]
    return rows


def figure_tokens(bench: Bench, sizes: list[int]) -> list[Row]:
    """6. Prompt tokens sent per run as the plan grows from 3 to 30 tasks."""
    rows, details = [], {}
    for size in sizes:
        if size == 3 and not offline_dag.shape_scripting_available():
            shape, label = default_plan_shape(bench.latency_ms), "offline default plan"
        elif offline_dag.shape_scripting_available():
            layers = max(2, min(size, round(size**0.5)))
            shape = layered_shape(
                name=f"{size} tasks in {layers} layers", tasks=size, layers=layers,
                latency_ms=bench.latency_ms, spread=bench.spread, seed=bench.seed,
            )  # fmt: skip
            label = shape.name
            offline_dag.shape_script(shape)
        else:
            rows.append(Row("6", f"prompt tokens per run, {size} tasks", ours=NOT_AVAILABLE))
            continue
        try:
            run = bench.run_one("A library catalogue with loans")
        finally:
            offline_dag.shape_clear()
        details[size] = {
            "run": run.id,
            "status": run.status,
            "tokens_in": run.tokens_in,
            "tokens_out": run.tokens_out,
            "shape": shape.as_dict(),
        }
        rows.append(
            Row(
                "6",
                f"prompt tokens per run, {size} tasks",
                ours=f"{run.tokens_in:,}",
                note=f"{label}; {run.tokens_in / size:,.0f} per task"
                + ("" if run.status == "completed" else f"; run {run.status}"),
            )
        )
    bench.details["tokens"] = details
    return rows
