"""Making the offline model plan a given ``Shape``: N tasks in L layers, per-call latencies.

The offline model (``providers.offline``) plans three tasks by itself, every call taking
``OFFLINE_LATENCY_MS``. Planning an arbitrary DAG with seeded per-call latencies is being
added to it (scripted through Redis, so every worker process sees it). Until it is there,
``shape_script`` says so, and the figures that need a scripted shape print "not available
yet" instead of a number; the ones that can use the default plan use it.

Expected interface (``providers.offline.answers``): ``dag_set(tasks=[{"key", "depends_on",
"latency_ms": {"coder": ms, "tester": ms}}], latency_ms={"architect": ms, "planner": ms,
"orchestrator": ms, "integrator": ms})`` and ``dag_clear()``.
"""

from __future__ import annotations

from typing import Any

from .shape import Shape

NOT_AVAILABLE = "not available yet: the offline model cannot be scripted to plan a DAG"


def _scripting() -> Any | None:
    from providers.offline import answers

    setter = getattr(answers, "dag_set", None)
    return setter if callable(setter) else None


def shape_scripting_available() -> bool:
    """Whether the offline model can be made to plan an arbitrary shape."""
    return _scripting() is not None


def shape_script(shape: Shape) -> None:
    """Make the offline model plan ``shape`` with its latencies (for the runs started next)."""
    setter = _scripting()
    if setter is None:
        raise NotImplementedError(NOT_AVAILABLE)
    setter(
        tasks=[
            {
                "key": task.key,
                "depends_on": list(task.depends_on),
                "latency_ms": {"coder": task.coder_ms, "tester": task.tester_ms},
            }
            for task in shape.tasks
        ],
        latency_ms={
            "architect": shape.design_ms[0],
            "planner": shape.design_ms[1],
            "orchestrator": shape.design_ms[2],
            "integrator": shape.integrate_ms,
        },
    )


def shape_clear() -> None:
    """Back to the offline model's own plan."""
    from providers.offline import answers

    clear = getattr(answers, "dag_clear", None)
    if callable(clear):
        clear()
