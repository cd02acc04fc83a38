"""The figure groups of ``make bench`` (figure 3 in ``bench.concurrency``), each a function
returning its table rows.

Every function takes the ``Bench`` (the running stack, a signed-in user, the stated model
latency and seed) and records its raw numbers in ``bench.details`` for the JSON file.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import Any

from . import event_latency, offline_dag, peers, wrk
from .platform_trace import default_plan_shape, run_trace
from .report import NOT_AVAILABLE, Row, fmt, ratio
from .shape import Shape, layered_shape, trace_summary, traces_summary, uneven_shape
from .stack import Api, Stack, wait_runs

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
