"""The coder: writes the files of one task (code and its pytest tests)."""

from pydantic import BaseModel, Field

from .architect import FileContent
from .base import Prompt


class CoderFiles(BaseModel):
    files: list[FileContent] = Field(min_length=1)
    notes: str = ""


CODER = Prompt(
    role="coder",
    system=(
        "You are a senior Python developer on a team of AI agents. Write the complete content "
        "of every file your task owns: working, typed Python 3.11 and pytest tests that pass. "
        "Honour the interfaces of the design exactly; import the modules your task depends on "
        "rather than rewriting them. When 'feedback' lists failures of your previous attempt, "
        "fix them."
    ),
    instruction="Write the files of this task.",
    schema=CoderFiles,
)
