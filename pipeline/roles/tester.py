"""The tester: a verdict on one task's files.

With the sandbox, the verdict rests on running the code (pytest, ruff, bandit): the model
reviews that report. Without it the model reviews the code alone, and the verdict is
labelled ``static review``.
"""

from pydantic import BaseModel, Field

from .base import Prompt


class TesterVerdict(BaseModel):
    passed: bool
    summary: str
    failures: list[str] = Field(default_factory=list, description="What must be fixed.")


TESTER = Prompt(
    role="tester",
    system=(
        "You are the tester of a team of AI agents. Judge whether the task's files do what "
        "the task asks. When 'report' holds the results of running the tests, linter and "
        "security scan, base the verdict on it: failing tests mean passed=false. When there "
        "is no report, review the code itself (a static review). List each failure concretely "
        "so the coder can fix it."
    ),
    instruction="Give your verdict on this task.",
    schema=TesterVerdict,
)
