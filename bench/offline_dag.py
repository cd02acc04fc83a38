"""Making the offline model plan a given ``Shape``: N tasks in L layers, per-call latencies.

The offline model (``providers.offline.answers``) plans three tasks by itself, every call
taking ``OFFLINE_LATENCY_MS``. Where it can be scripted (through Redis, so every worker
process sees it) ``dag_set(tasks=[{"key", "depends_on"}])`` makes its architect and planner
design and approve exactly a given DAG, and ``latency_set(tasks={key: ms}, roles={role: ms})``
sets how long each call takes (a task's coder and tester calls take the task's latency).
Where it cannot yet, ``shape_scripting_available`` says so and the figures that need a shape
print "not available yet" instead of a number; those that can use the default plan use it.
"""

from __future__ import annotations

from typing import Any

from .shape import Shape

NOT_AVAILABLE = "not available yet: the offline model cannot be scripted to plan a DAG"


def _answers() -> Any:
    from providers.offline import answers

    return answers


def shape_scripting_available() -> bool:
    """Whether the offline model can be made to plan an arbitrary shape."""
    answers = _answers()
    return all(callable(getattr(answers, name, None)) for name in ("dag_set", "latency_set"))


def shape_script(shape: Shape) -> None:
    """Make the offline model plan ``shape`` with its latencies (for the runs started next)."""
    if not shape_scripting_available():
        raise NotImplementedError(NOT_AVAILABLE)
    uneven = [t.key for t in shape.tasks if t.coder_ms != t.tester_ms]
    if uneven:
        raise ValueError(f"the offline model gives coder and tester one latency: {uneven}")
    answers = _answers()
    answers.dag_set([{"key": t.key, "depends_on": list(t.depends_on)} for t in shape.tasks])
    answers.latency_set(
        tasks={t.key: t.coder_ms for t in shape.tasks},
        roles={
            "architect": shape.design_ms[0],
            "planner": shape.design_ms[1],
            "orchestrator": shape.design_ms[2],
            "integrator": shape.integrate_ms,
        },
    )


def shape_clear() -> None:
    """Back to the offline model's own plan and latency."""
    answers = _answers()
    for name in ("dag_clear", "latency_clear"):
        clear = getattr(answers, name, None)
        if callable(clear):
            clear()
