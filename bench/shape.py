"""The pipeline's shape as data, and what a schedule of it costs.

A ``Shape`` is what every system in the benchmark executes: a design round (architect,
planner, orchestrator), a DAG of plan tasks (each a coder call then a tester call, both
taking the task's seeded latency, as the offline model scripts it), and the integrator.
From it follow the two reference times:

- the critical path: the longest chain of dependent model calls, the least wall time any
  scheduler can reach with unbounded parallelism and zero overhead;
- the layer-by-layer time: what a schedule with a barrier after every DAG layer takes
  (each layer lasts as long as its slowest task).

A ``Trace`` is what one execution did: every call with its dependencies, start and end.
``trace_summary`` turns it into the figures the table prints: the wall time, the hops (from
the end of the last dependency to the start of the call) along the critical chain, and the
ratios to the two reference times. The platform's trace comes from its Step rows
(``bench.platform``), the peers' from their own clocks (``bench.peers``).
"""

from __future__ import annotations

import math
import random
import statistics
from dataclasses import dataclass, field

DESIGN_CALLS = ("architect", "planner", "orchestrator")


@dataclass(frozen=True)
class Task:
    """One plan task: its place in the DAG and the latency of its coder and tester calls."""

    key: str
    layer: int
    depends_on: tuple[str, ...]
    coder_ms: int
    tester_ms: int

    @property
    def ms(self) -> int:
        return self.coder_ms + self.tester_ms


@dataclass(frozen=True)
class Call:
    """One model call of a shape: its key, the keys it waits for, its latency."""

    key: str
    deps: tuple[str, ...]
    ms: int


@dataclass(frozen=True)
class Shape:
    """Design round, plan DAG, integration; every latency in milliseconds."""

    name: str
    design_ms: tuple[int, int, int]
    tasks: tuple[Task, ...]
    integrate_ms: int
    seed: int = 0

    @property
    def layers(self) -> list[list[Task]]:
        count = 1 + max((t.layer for t in self.tasks), default=-1)
        return [[t for t in self.tasks if t.layer == index] for index in range(count)]

    def calls(self) -> list[Call]:
        """The shape's calls in a topological order, with the keys each waits for."""
        calls = [
            Call("architect", (), self.design_ms[0]),
            Call("planner", ("architect",), self.design_ms[1]),
            Call("orchestrator", ("planner",), self.design_ms[2]),
        ]
        for layer in self.layers:
            for task in layer:
                deps = tuple(f"{d}:tester" for d in task.depends_on) or ("orchestrator",)
                calls.append(Call(f"{task.key}:coder", deps, task.coder_ms))
                calls.append(Call(f"{task.key}:tester", (f"{task.key}:coder",), task.tester_ms))
        last = tuple(f"{t.key}:tester" for t in self.tasks) or ("orchestrator",)
        calls.append(Call("integrator", last, self.integrate_ms))
        return calls

    def critical_path_ms(self) -> int:
        """The longest dependent chain of calls (no scheduler can finish sooner)."""
        finish: dict[str, int] = {}
        for call in self.calls():
            finish[call.key] = max((finish[d] for d in call.deps), default=0) + call.ms
        return max(finish.values())

    def layered_ms(self) -> int:
        """What a schedule with a barrier after each DAG layer takes."""
        return (
            sum(self.design_ms)
            + sum(max(t.ms for t in layer) for layer in self.layers)
            + self.integrate_ms
        )

    def as_dict(self) -> dict:
        return {
            "name": self.name,
            "seed": self.seed,
            "design_ms": list(self.design_ms),
            "integrate_ms": self.integrate_ms,
            "tasks": [
                {
                    "key": t.key,
                    "layer": t.layer,
                    "depends_on": list(t.depends_on),
                    "coder_ms": t.coder_ms,
                    "tester_ms": t.tester_ms,
                }
                for t in self.tasks
            ],
            "critical_path_ms": self.critical_path_ms(),
            "layered_ms": self.layered_ms(),
        }


def shape_from_dict(data: dict) -> Shape:
    """The ``Shape`` that ``Shape.as_dict`` gave ``data`` for."""
    return Shape(
        name=data["name"],
        seed=data.get("seed", 0),
        design_ms=tuple(data["design_ms"]),  # type: ignore[arg-type]
        integrate_ms=data["integrate_ms"],
        tasks=tuple(
            Task(t["key"], t["layer"], tuple(t["depends_on"]), t["coder_ms"], t["tester_ms"])
            for t in data["tasks"]
        ),
    )


def uneven_shape(
    *, name: str, tasks: int, layers: int, latency_ms: int, seed: int, min_gap: float = 1.25
) -> Shape:
    """A layered shape whose barrier costs at least ``min_gap`` times its critical path.

    Latencies vary up to fourfold either way; the first seed from ``seed`` on whose
    layer-by-layer time reaches ``min_gap`` times the critical path is taken (deterministic).
    """
    for attempt in range(seed, seed + 1000):
        shape = layered_shape(
            name=name, tasks=tasks, layers=layers, latency_ms=latency_ms, spread=3.0, seed=attempt
        )
        if shape.layered_ms() >= min_gap * shape.critical_path_ms():
            return shape
    raise ValueError(f"no seed in {seed}..{seed + 999} gives a gap of {min_gap}")


def layered_shape(
    *,
    name: str,
    tasks: int,
    layers: int,
    latency_ms: int,
    spread: float,
    seed: int,
) -> Shape:
    """``tasks`` tasks over ``layers`` layers; seeded dependencies and latencies.

    Tasks are spread evenly over the layers (the first layers take the remainder). Each task
    after the first layer depends on one or two tasks of the layer before it, and every task
    of a layer is depended on by at least one task of the next (so the layers are real). Every
    design call, the integrator and every task (its coder and its tester call alike) takes
    ``latency_ms`` times a factor drawn log-uniformly from ``[1 / (1 + spread), 1 + spread]``:
    ``spread=0`` gives equal latencies.
    """
    if not 1 <= layers <= tasks:
        raise ValueError("need 1 <= layers <= tasks")
    rng = random.Random(seed)
    low, high = math.log(1 / (1 + spread)), math.log(1 + spread)

    def latency() -> int:
        return max(1, round(latency_ms * math.exp(rng.uniform(low, high))))

    design = (latency(), latency(), latency())
    sizes = [tasks // layers + (1 if index < tasks % layers else 0) for index in range(layers)]
    width = len(str(tasks))
    keys_by_layer: list[list[str]] = []
    number = 0
    for size in sizes:
        keys_by_layer.append([f"t{number + i + 1:0{width}d}" for i in range(size)])
        number += size
    depends: dict[str, tuple[str, ...]] = {}
    for index, keys in enumerate(keys_by_layer):
        if index == 0:
            depends.update(dict.fromkeys(keys, ()))
            continue
        previous = keys_by_layer[index - 1]
        chosen: dict[str, set[str]] = {
            key: set(rng.sample(previous, k=min(len(previous), rng.choice((1, 2))))) for key in keys
        }
        # Every task of the previous layer feeds at least one task of this one.
        for orphan in set(previous) - set().union(*chosen.values()):
            chosen[rng.choice(keys)].add(orphan)
        depends.update({key: tuple(sorted(deps)) for key, deps in chosen.items()})
    plan = []
    for index, keys in enumerate(keys_by_layer):
        for key in keys:
            ms = latency()  # the task's coder and tester calls take the same time
            plan.append(Task(key, index, depends[key], ms, ms))
    return Shape(name=name, design_ms=design, tasks=tuple(plan), integrate_ms=latency(), seed=seed)


# --- what one execution did ------------------------------------------------------------------


@dataclass
class Span:
    """One call as executed: wall-clock start and end in seconds (``time.time()``)."""

    key: str
    deps: tuple[str, ...]
    start: float
    end: float


@dataclass
class Trace:
    """An execution: its spans, when it was asked for (``begin``) and when it was done."""

    begin: float
    end: float
    spans: list[Span] = field(default_factory=list)


def _percentile(values: list[float], fraction: float) -> float:
    """The nearest-rank percentile (``fraction`` in 0..1) of ``values``."""
    ordered = sorted(values)
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[rank - 1]


def percentiles(values: list[float]) -> dict[str, float | None]:
    """p50 and p99 (nearest rank) and the maximum; None for no values."""
    if not values:
        return {"p50": None, "p99": None, "max": None, "n": 0}
    return {
        "p50": statistics.median(values),
        "p99": _percentile(values, 0.99),
        "max": max(values),
        "n": len(values),
    }


def critical_chain(trace: Trace) -> list[tuple[Span, float]]:
    """The chain of spans that ended last, walked back through the dependency ending last.

    Each item is a span and its hop in seconds: from the end of that dependency (or the
    trace's ``begin`` for a span without dependencies) to the span's start.
    """
    by_key = {span.key: span for span in trace.spans}
    if not by_key:
        return []
    current: Span | None = max(trace.spans, key=lambda s: s.end)
    chain: list[tuple[Span, float]] = []
    while current is not None:
        deps = [by_key[d] for d in current.deps if d in by_key]
        before = max(deps, key=lambda s: s.end) if deps else None
        ready = before.end if before is not None else trace.begin
        chain.append((current, current.start - ready))
        current = before
    chain.reverse()
    return chain


def traces_summary(traces: list[Trace], shape: Shape | None = None) -> dict | None:
    """``trace_summary`` over several runs of one shape: the hops of all of them pooled (one
    run's critical chain has only a dozen), the other figures the median of the runs."""
    if not traces:
        return None
    each = [trace_summary(trace, shape) for trace in traces]
    pooled = [hop * 1000 for trace in traces for _, hop in critical_chain(trace)[1:]]
    summary = {
        key: statistics.median(value[key] for value in each)
        for key, first in each[0].items()
        if isinstance(first, int | float) and all(value[key] is not None for value in each)
    }
    return {**summary, "runs": len(traces), "hops_ms": percentiles(pooled)}


def trace_summary(trace: Trace, shape: Shape | None = None) -> dict:
    """Wall time, hops on the critical chain (ms), and ratios to the shape's references."""
    wall = trace.end - trace.begin
    chain = critical_chain(trace)
    # The first hop is queueing the run (request -> first call); the last, after the chain,
    # is finishing it (last call -> done); both are shown apart from the hops between calls.
    between = [hop * 1000 for _, hop in chain[1:]]
    summary: dict = {
        "wall_s": wall,
        "calls": len(trace.spans),
        "chain_calls": len(chain),
        "hops_ms": percentiles(between),
        "start_ms": chain[0][1] * 1000 if chain else None,
        "finish_ms": (trace.end - chain[-1][0].end) * 1000 if chain else None,
    }
    if shape is not None:
        summary["critical_path_s"] = shape.critical_path_ms() / 1000
        summary["layered_s"] = shape.layered_ms() / 1000
        summary["wall_over_critical_path"] = wall / summary["critical_path_s"]
        summary["wall_over_layered"] = wall / summary["layered_s"]
    return summary
