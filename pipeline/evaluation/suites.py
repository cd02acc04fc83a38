"""Evaluation suites on disk: one directory per case, a prompt and hidden pytest files.

::

    evaluation/<suite>/<case>/prompt.md           what the agents are asked (all they see)
    evaluation/<suite>/<case>/hidden/test_*.py    acceptance tests, never shown to them
    evaluation/<suite>/<case>/repo/...            a change case: the repository to change

A hidden test imports the package the prompt names and checks what the prompt promises. A
case with a ``repo/`` directory is a change case: the repository (with its own passing
tests) is imported first, and the prompt asks for a change to it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from django.conf import settings

from common.errors import ApplicationError

from ..context import collected_test_names

_CASE_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
_HIDDEN_NAME = re.compile(r"^test_[A-Za-z0-9_]+\.py$")


class SuiteInvalid(ApplicationError):
    """The suite is missing, empty, or one of its cases is malformed."""

    code = "invalid_suite"


@dataclass(frozen=True)
class Case:
    """One project of a suite: its prompt and its hidden tests (file name -> source)."""

    name: str
    prompt: str
    hidden: dict[str, str] = field(default_factory=dict)
    # A change case's repository (path -> bytes); empty for a case built from nothing.
    repo: dict[str, bytes] = field(default_factory=dict)

    @property
    def is_change(self) -> bool:
        return bool(self.repo)

    @property
    def hidden_count(self) -> int:
        """How many tests the hidden files define (``test_*`` functions and methods)."""
        return sum(len(collected_test_names(source)) for source in self.hidden.values())


@dataclass(frozen=True)
class Suite:
    name: str
    path: Path
    cases: list[Case]


def suite_path(ref: str) -> Path:
    """``ref`` as a directory: a path as given, else a suite under ``<BASE_DIR>/evaluation``."""
    given = Path(ref).expanduser()
    if given.is_dir():
        return given.resolve()
    shipped = Path(settings.BASE_DIR) / "evaluation" / ref
    if _CASE_NAME.match(ref) and shipped.is_dir():
        return shipped.resolve()
    raise SuiteInvalid(f"No suite {ref!r}: name a directory or a suite under evaluation/.")


# Caches a fixture repository may have from running its tests by hand: never imported.
_REPO_SKIPPED = {"__pycache__", ".pytest_cache", ".ruff_cache", ".mypy_cache", ".git"}


def _repo_load(directory: Path) -> dict[str, bytes]:
    files: dict[str, bytes] = {}
    for path in sorted(directory.rglob("*")):
        relative = path.relative_to(directory)
        if path.is_file() and not _REPO_SKIPPED & set(relative.parts):
            files[relative.as_posix()] = path.read_bytes()
    return files


def _case_load(directory: Path) -> Case:
    if not _CASE_NAME.match(directory.name):
        raise SuiteInvalid(f"Case directory {directory.name!r}: use lower-case letters, digits, _.")
    prompt_file = directory / "prompt.md"
    if not prompt_file.is_file():
        raise SuiteInvalid(f"Case {directory.name}: prompt.md is missing.")
    prompt = prompt_file.read_text(encoding="utf-8").strip()
    if not prompt:
        raise SuiteInvalid(f"Case {directory.name}: prompt.md is empty.")
    hidden_dir = directory / "hidden"
    files = sorted(hidden_dir.glob("*.py")) if hidden_dir.is_dir() else []
    hidden: dict[str, str] = {}
    for path in files:
        if not _HIDDEN_NAME.match(path.name):
            raise SuiteInvalid(f"Case {directory.name}: hidden file {path.name} is not test_*.py.")
        hidden[path.name] = path.read_text(encoding="utf-8")
    repo_dir = directory / "repo"
    repo = _repo_load(repo_dir) if repo_dir.is_dir() else {}
    if repo_dir.is_dir() and not repo:
        raise SuiteInvalid(f"Case {directory.name}: repo/ holds no files.")
    case = Case(name=directory.name, prompt=prompt, hidden=hidden, repo=repo)
    if case.hidden_count == 0:
        raise SuiteInvalid(f"Case {directory.name}: hidden/ defines no test_* function.")
    leaked = [
        name
        for source in hidden.values()
        for name in collected_test_names(source)
        if name.rsplit("::", 1)[-1] in prompt
    ] + [name for name in hidden if name in prompt]
    if leaked:
        raise SuiteInvalid(f"Case {directory.name}: the prompt names hidden tests {leaked}.")
    return case


def suite_load(*, ref: str, only: list[str] | None = None) -> Suite:
    """The suite at ``ref`` (see ``suite_path``), its cases sorted by name.

    ``only`` keeps the named cases (an unknown name is ``SuiteInvalid``).
    """
    path = suite_path(ref)
    cases = [_case_load(d) for d in sorted(path.iterdir()) if d.is_dir() and d.name[0] not in "._"]
    if only:
        unknown = sorted(set(only) - {case.name for case in cases})
        if unknown:
            raise SuiteInvalid(f"The suite has no case {', '.join(unknown)}.")
        cases = [case for case in cases if case.name in only]
    if not cases:
        raise SuiteInvalid(f"The suite at {path} has no cases.")
    return Suite(name=path.name, path=path, cases=cases)
