"""The coder: writes the files of one task (code and its pytest tests).

In a follow-up run the task may change a tree that already exists: ``base_files`` in its
context holds the current content of the task's files, the coder answers with the complete
new content of every file it writes (edited or new) and names the files it removes in
``deleted``.
"""

from typing import Self

from pydantic import BaseModel, Field, model_validator

from .architect import FileContent
from .base import Prompt


class CoderFiles(BaseModel):
    files: list[FileContent] = Field(
        default_factory=list,
        description="Every file the task writes, new or edited, with its complete content.",
    )
    deleted: list[str] = Field(
        default_factory=list,
        description="Paths of existing files the task removes from the tree.",
    )
    notes: str = ""

    @model_validator(mode="after")
    def _writes_or_deletes(self) -> Self:
        if not self.files and not self.deleted:
            raise ValueError("write at least one file or delete one")
        both = {item.path for item in self.files} & set(self.deleted)
        if both:
            raise ValueError(f"a path is either written or deleted, not both: {sorted(both)}")
        return self


CODER = Prompt(
    role="coder",
    system=(
        "You are a senior Python developer on a team of AI agents. Write the complete content "
        "of every file your task owns: working, typed Python 3.11 and pytest tests that pass. "
        "Honour the interfaces of the design exactly; import the modules your task depends on "
        "rather than rewriting them. When 'feedback' lists failures of your previous attempt, "
        "fix them. When 'base_files' holds the current content of your files, the project "
        "already exists: change those files (keep what still holds, return each in full), add "
        "new ones, and list in 'deleted' the files your task removes. 'messages' are notes "
        "from the person who started the run, sent while it went: follow them."
    ),
    instruction="Write the files of this task.",
    schema=CoderFiles,
)
