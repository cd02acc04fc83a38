"""The peers: the same shape run in-process by LangGraph, and as a bare Celery canvas.

Both execute ``Shape.calls()`` with each call sleeping its latency (what a model call costs
the scheduler: waiting), record when every call started and ended, and return a ``Trace``
for ``trace_summary``, so their figures are computed exactly like the platform's.

- LangGraph: one ``StateGraph`` node per call, an edge from each dependency (a node with
  several incoming edges waits for all of them), ``ainvoke`` in this process; N concurrent
  runs are N concurrent ``ainvoke`` on one event loop.
- Celery: the canvas a plain Celery app would build, no database: a chain of the design
  calls, then one chord per DAG layer (a group of coder -> tester chains, a no-op body), then
  the integrator; a worker of its own (``bench.peer_celery``) on the bench's Redis, with the
  llm worker's pool and concurrency.
"""

from __future__ import annotations

import asyncio
import json
import operator
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Annotated, Any, TypedDict

from .shape import Shape, Span, Trace, shape_from_dict


class _State(TypedDict):
    spans: Annotated[list[tuple[str, float, float]], operator.add]


def langgraph_build(shape: Shape) -> Any:
    """A compiled LangGraph graph of ``shape`` (one node per call, edges from dependencies)."""
    from langgraph.graph import END, START, StateGraph

    graph = StateGraph(_State)
    calls = shape.calls()

    def name(key: str) -> str:
        return key.replace(":", ".")  # ':' is reserved in LangGraph node names

    def node(key: str, ms: int) -> Any:
        async def call(state: _State) -> dict[str, Any]:
            start = time.time()
            await asyncio.sleep(ms / 1000)
            return {"spans": [(key, start, time.time())]}

        return call

    for call in calls:
        graph.add_node(name(call.key), node(call.key, call.ms))
    for call in calls:
        if not call.deps:
            graph.add_edge(START, name(call.key))
        elif len(call.deps) == 1:
            graph.add_edge(name(call.deps[0]), name(call.key))
        else:
            graph.add_edge([name(d) for d in call.deps], name(call.key))
    graph.add_edge(name(calls[-1].key), END)
    return graph.compile()


def _trace(shape: Shape, begin: float, end: float, spans: list[tuple[str, float, float]]) -> Trace:
    deps = {call.key: call.deps for call in shape.calls()}
    return Trace(
        begin=begin,
        end=end,
        spans=[Span(key, deps[key], start, stop) for key, start, stop in spans],
    )


def langgraph_run(shape: Shape, *, runs: int = 1) -> list[Trace]:
    """``runs`` concurrent executions of ``shape`` by LangGraph; one trace each."""
    graph = langgraph_build(shape)

    async def one() -> Trace:
        begin = time.time()
        state = await graph.ainvoke({"spans": []})
        return _trace(shape, begin, time.time(), state["spans"])

    async def all_runs() -> list[Trace]:
        return list(await asyncio.gather(*(one() for _ in range(runs))))

    return asyncio.run(all_runs())


def _cpu_now(group: str) -> float:
    """CPU seconds so far of cpuacct cgroup ``group`` (a path), or of this process."""
    if group:
        return int((Path(group) / "cpuacct.usage").read_text()) / 1e9
    return time.process_time()


def langgraph_run_measured(
    shape: Shape, *, runs: int = 1, cpu_group: Path | None = None
) -> tuple[list[Trace], float]:
    """``langgraph_run`` in a process of its own; its traces and the CPU seconds the runs took.

    The process moves itself into ``cpu_group`` (a cpuacct cgroup, as the stack's processes
    are) and reads it just before the first run and after the last, so its start-up (importing
    LangGraph) is not counted; without a cgroup it counts its own CPU time
    (``time.process_time``: every thread of it, and it starts no other process).
    """
    job = {"shape": shape.as_dict(), "runs": runs, "cpu_group": str(cpu_group or "")}
    root = Path(__file__).resolve().parent.parent
    done = subprocess.run(
        [sys.executable, "-m", "bench.peers"],
        input=json.dumps(job),
        capture_output=True,
        text=True,
        check=True,
        cwd=root,
        env={**os.environ, "PYTHONPATH": str(root)},
        timeout=600,
    )
    result = json.loads(done.stdout.strip().splitlines()[-1])
    traces = [
        Trace(
            begin=t["begin"],
            end=t["end"],
            spans=[Span(s[0], tuple(s[1]), s[2], s[3]) for s in t["spans"]],
        )
        for t in result["traces"]
    ]
    return traces, float(result["cpu_s"])


def _measured_main() -> None:
    job = json.loads(sys.stdin.read())
    group = job["cpu_group"]
    if group:
        (Path(group) / "cgroup.procs").write_text(str(os.getpid()))
    shape = shape_from_dict(job["shape"])
    langgraph_build(shape)  # imports LangGraph before the clock starts
    before = _cpu_now(group)
    traces = langgraph_run(shape, runs=job["runs"])
    cpu = _cpu_now(group) - before
    out = {
        "cpu_s": cpu,
        "traces": [
            {
                "begin": t.begin,
                "end": t.end,
                "spans": [[s.key, list(s.deps), s.start, s.end] for s in t.spans],
            }
            for t in traces
        ],
    }
    print(json.dumps(out))


# --- Celery ---------------------------------------------------------------------------------


def celery_canvas(shape: Shape, run: str) -> Any:
    """The canvas of ``shape`` as a plain Celery app builds it: chords per layer."""
    from celery import chain, chord, group

    from . import peer_celery as peer

    by_key = {call.key: call for call in shape.calls()}

    def sig(key: str) -> Any:
        return peer.model_call.si(run, key, by_key[key].ms)

    parts: list[Any] = [sig("architect"), sig("planner"), sig("orchestrator")]
    for index, layer in enumerate(shape.layers):
        header = group(chain(sig(f"{t.key}:coder"), sig(f"{t.key}:tester")) for t in layer)
        parts.append(chord(header, peer.layer_done.si(run, index)))
    parts.append(sig("integrator"))
    return chain(*parts)


def celery_run(shape: Shape, *, runs: int = 1, timeout: float = 600) -> list[Trace]:
    """``runs`` concurrent canvases of ``shape`` on the peer worker; one trace each.

    The worker must be running (``bench.stack.Stack.start_peer_worker``). Each call records
    its span in Redis (one list per run); a run is done when its integrator has recorded.
    """
    from . import peer_celery as peer

    client = peer.redis_client()
    names = [f"{os.getpid()}-{time.time_ns()}-{n}" for n in range(runs)]
    begins: dict[str, float] = {}
    for name in names:
        client.delete(peer.SPANS_KEY.format(run=name))
        begins[name] = time.time()
        celery_canvas(shape, name).apply_async()
    traces: dict[str, Trace] = {}
    deadline = time.monotonic() + timeout
    while len(traces) < runs and time.monotonic() < deadline:
        for name in names:
            if name in traces:
                continue
            spans = peer.spans_of(name)
            ends = [end for key, _, end in spans if key == "integrator"]
            if ends:
                traces[name] = _trace(shape, begins[name], ends[0], spans)
        time.sleep(0.02)
    if len(traces) < runs:
        raise TimeoutError(f"{runs - len(traces)} Celery peer run(s) did not finish")
    return [traces[name] for name in names]


if __name__ == "__main__":
    _measured_main()
