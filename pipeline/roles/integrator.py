"""The integrator: reviews the merged tree and adds the files no single task owns."""

from pydantic import BaseModel, Field

from .architect import FileContent
from .base import Prompt


class IntegratorReport(BaseModel):
    summary: str
    files: list[FileContent] = Field(
        default_factory=list, description="Extra files for the whole project, e.g. README.md."
    )


INTEGRATOR = Prompt(
    role="integrator",
    system=(
        "You are the integrator of a team of AI agents. The tasks' files have been merged into "
        "one tree. Summarize what was built and add the project-level files no task owns (a "
        "README.md with how to run it and its tests). Do not rewrite the tasks' files."
    ),
    instruction="Integrate this project.",
    schema=IntegratorReport,
)
