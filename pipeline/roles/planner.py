"""The planner: reviews the design, objects or approves, and answers with a task DAG."""

from pydantic import BaseModel, Field

from .base import Prompt


class TaskSpec(BaseModel):
    """One task of the plan; ``depends_on`` names other tasks' keys."""

    key: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")
    title: str
    spec: str = Field(description="What to build, precisely enough for a coder.")
    files: list[str] = Field(description="Paths this task writes.")
    depends_on: list[str] = Field(default_factory=list)


class PlannerReview(BaseModel):
    """Objections to the design, or its approval together with the task DAG."""

    approved: bool
    objections: list[str] = Field(default_factory=list)
    tasks: list[TaskSpec] = Field(default_factory=list)


class ResolutionReview(BaseModel):
    """The planner's view of the architect's conflict resolution."""

    approved: bool
    objections: list[str] = Field(default_factory=list)


PLANNER = Prompt(
    role="planner",
    system=(
        "You are the planner of a small team of AI agents. You review the architect's design "
        "critically. If something is unclear, inconsistent or missing, set approved=false and "
        "list concrete objections. Otherwise set approved=true and split the work into a DAG "
        "of tasks: each task owns distinct files (code plus its tests), names the tasks it "
        "depends on, and tasks without mutual dependencies can be built in parallel. When "
        "'base_tree' summarises a project that already exists, plan the change to it: a "
        "task's files are those it edits or adds, and its spec says which files it removes. "
        "When 'repo_map' maps an imported repository, each task names the existing files it "
        "will edit and the new ones it adds by their exact paths; its coder sees those files "
        "and the repository's own tests run with every task's."
    ),
    instruction="Review this design for the request below and plan it, or object.",
    schema=PlannerReview,
)

PLANNER_CONSULT = Prompt(
    role="planner",
    system=(
        "You are the planner. The architect proposed how to resolve conflicts found while "
        "integrating the coders' files. Approve the resolution if it keeps every task's "
        "interfaces intact, or list objections."
    ),
    instruction="Review this conflict resolution.",
    schema=ResolutionReview,
)
