"""What comes next in a run, as data: stages return a ``Next``, ``pipeline.canvas`` sends it.

Stages decide, the canvas carries out: a stage never builds a Celery signature, and the
canvas never reads a row. Kinds:

- ``design`` (round): the architect then the planner of that design round;
- ``orchestrate``: the approval gate and the orchestrator, then the tasks that are ready;
- ``tasks`` ((plan task id, attempt), ...): each a coder -> tester chain, all at once;
- ``integrate``: integration, then finalize;
- ``import``: an import run's fetch, then its baseline (the repository's own tests).

A run may start from any of them (``canvas_dispatch(start=...)``): steps that already
succeeded (or were copied from another run) answer from their rows.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Next:
    """What the canvas does after a task: ``kind`` names it, ``args`` parametrize it."""

    kind: str
    args: tuple = ()

    @classmethod
    def design(cls, round: int) -> Next:  # noqa: A002
        return cls("design", (round,))

    @classmethod
    def tasks(cls, *attempts: tuple[int, int]) -> Next:
        """Coder -> tester chains for ``(plan task id, attempt)`` pairs."""
        return cls("tasks", tuple(attempts))


ORCHESTRATE = Next("orchestrate")
INTEGRATE = Next("integrate")
IMPORT = Next("import")
