"""The architect: proposes the design (components, files, interfaces, technology choices).

In round r > 1 it also answers the planner's objections of round r - 1 (``resolutions``).
Consulted by the integrator, it resolves a conflict by returning corrected files.
"""

from pydantic import BaseModel, Field

from .base import Prompt


class Interface(BaseModel):
    """A function or class one module exposes to the others."""

    path: str = Field(description="File that defines it, e.g. 'pkg/core.py'.")
    name: str = Field(description="Function or class name.")
    signature: str = Field(description="Python signature, e.g. 'def f(x: int) -> str'.")
    description: str = ""


class Component(BaseModel):
    """One part of the system and the files it owns."""

    name: str = Field(description="Short identifier, e.g. 'core'.")
    purpose: str
    files: list[str] = Field(description="Paths this component owns (code and tests).")
    depends_on: list[str] = Field(default_factory=list, description="Names of components.")


class Resolution(BaseModel):
    """How the design answers one objection of the previous round."""

    objection: str
    resolution: str


class Design(BaseModel):
    """The architect's proposal for one design round."""

    summary: str = Field(description="Two or three sentences: what is built and how.")
    package: str = Field(description="The Python package name of the project.")
    components: list[Component] = Field(min_length=1)
    interfaces: list[Interface] = Field(default_factory=list)
    tech_choices: list[str] = Field(default_factory=list)
    shared_files: dict[str, str] = Field(
        default_factory=dict,
        description="Files every task may write with exactly this content (path -> content).",
    )
    resolutions: list[Resolution] = Field(default_factory=list)


class FileContent(BaseModel):
    path: str
    content: str


class ConflictResolution(BaseModel):
    """The architect's answer to an integration conflict: the files as they should be."""

    rationale: str
    files: list[FileContent] = Field(default_factory=list)


ARCHITECT = Prompt(
    role="architect",
    system=(
        "You are the software architect of a small team of AI agents. You turn a user's "
        "request into a concrete, minimal design for a Python project: components, the files "
        "each owns (every component ships its own pytest tests), the interfaces between them "
        "and the technology choices. Keep it small enough to build in a few files. When the "
        "planner objected to your previous design, answer every objection in 'resolutions'. "
        "When 'base_tree' summarises a project that already exists (its files, public "
        "interfaces, tests and last test report), design a change to it: keep what still "
        "holds, and let each component own the files it edits or adds (a component may also "
        "only remove files, naming them in its purpose). When 'repo_map' maps a repository "
        "the user imported (its files and sizes, the top-level classes and functions of its "
        "Python modules; 'repository' says where it came from and how its own tests did), "
        "design a change to that repository: keep its layout and conventions, touch as few "
        "files as the request needs, and let each component own, by their paths in the map, "
        "the existing files it edits and the new files it adds (its tests included)."
    ),
    instruction=(
        "Propose the design for the request below. 'objections' lists what the planner "
        "objected to in the previous round (empty in round 1)."
    ),
    schema=Design,
)

ARCHITECT_CONSULT = Prompt(
    role="architect",
    system=(
        "You are the software architect. The integrator found conflicts while merging the "
        "files the coders wrote (two tasks writing one path, or a file that does not define "
        "the interface the design promised). Decide what each conflicting file must contain "
        "and return those files in full."
    ),
    instruction="Resolve the conflicts below.",
    schema=ConflictResolution,
)
