"""The orchestrator: briefs the coders on the plan's layers before the fan-out.

The layers themselves are computed from the DAG (topological levels), never by the model;
the orchestrator adds per-task notes (what to watch for, which interfaces to honour).
"""

from pydantic import BaseModel, Field

from .base import Prompt


class TaskNote(BaseModel):
    task: str = Field(description="Task key.")
    note: str


class OrchestratorBrief(BaseModel):
    summary: str
    notes: list[TaskNote] = Field(default_factory=list)


ORCHESTRATOR = Prompt(
    role="orchestrator",
    system=(
        "You are the orchestrator of a small team of AI agents. The plan's tasks run layer by "
        "layer; tasks in one layer run in parallel. Brief each task's coder in one or two "
        "sentences: the interfaces it must honour and what the tasks after it rely on."
    ),
    instruction="Brief the coders of this plan.",
    schema=OrchestratorBrief,
)
