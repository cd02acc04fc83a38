"""The coder: writes the files of one task (code and its pytest tests).

In a follow-up run the task may change a tree that already exists: ``base_files`` in its
context holds the current content of the task's files. The coder changes an existing file
with edit blocks (``edits``: search/replace, applied exactly by ``pipeline.edits``), writes
new files (and existing ones of at most ``edit_rules.rewrite_max_lines`` lines) whole in
``files``, and names the files it removes in ``deleted``.
"""

from typing import Self

from pydantic import BaseModel, Field, model_validator

from .architect import FileContent
from .base import Prompt


class EditBlock(BaseModel):
    """One change to an existing file: ``search`` (copied exactly from the file, occurring
    in it exactly once) becomes ``replace``."""

    path: str = Field(description="An existing file, e.g. 'pkg/core.py'.")
    search: str = Field(
        description="Lines copied exactly from the file's current content (base_files), "
        "whitespace included, enough of them to occur exactly once."
    )
    replace: str = Field(description="What the search text becomes (may be empty).")


class CoderFiles(BaseModel):
    files: list[FileContent] = Field(
        default_factory=list,
        description="New files (and existing files small enough to rewrite), each complete.",
    )
    edits: list[EditBlock] = Field(
        default_factory=list,
        description="Changes to existing files as search/replace blocks, applied in order.",
    )
    deleted: list[str] = Field(
        default_factory=list,
        description="Paths of existing files the task removes from the tree.",
    )
    notes: str = ""

    @model_validator(mode="after")
    def _writes_or_deletes(self) -> Self:
        if not self.files and not self.edits and not self.deleted:
            raise ValueError("write, edit or delete at least one file")
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
        "already exists: change those files with edit blocks in 'edits' (each {path, search, "
        "replace}: 'search' copied exactly from the file, whitespace included, with enough "
        "lines to occur in it exactly once), write new files whole in 'files' (an existing "
        "file only when it has at most edit_rules.rewrite_max_lines lines), never touch "
        "edit_rules.binary_files, and list in 'deleted' the files your task removes. An edit "
        "that does not apply fails the attempt; 'feedback' then says which and why. "
        "'messages' are notes from the person who started the run, sent while it went: "
        "follow them."
    ),
    instruction="Write the files of this task.",
    schema=CoderFiles,
)
