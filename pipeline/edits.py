"""Edit blocks: how a coder changes a file that already exists, applied exactly.

A coder of a run with a base tree answers ``edits: [{path, search, replace}]`` for the files
it changes, ``files`` (complete content) for the files it adds, and ``deleted``. Each block
is applied to the file as the task found it (the base tree with the changes of the tasks it
depends on), after the blocks before it for the same file: its ``search`` text must occur in
that content exactly once, whitespace included, and is replaced by ``replace``. A whole-file
rewrite of an existing file is refused unless the file has at most
``PIPELINE_REWRITE_MAX_LINES`` lines. Anything that does not apply makes the attempt fail with
a plain reason per block, which the next attempt's coder gets as feedback; nothing of a
failed answer is kept.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from django.conf import settings

SHOWN_CHARS = 120


@dataclass
class Applied:
    """The outcome of one coder's answer: the files it leaves (path -> complete content), and
    why it does not apply (empty when it does)."""

    files: dict[str, str] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)


def _shown(text: str) -> str:
    one_line = text.strip().replace("\n", "\\n")
    return one_line if len(one_line) <= SHOWN_CHARS else one_line[: SHOWN_CHARS - 1] + "…"


def rewrite_max_lines() -> int:
    return int(settings.PIPELINE_REWRITE_MAX_LINES)


def edits_apply(
    *,
    base: dict[str, str],
    files: dict[str, str],
    edits: list[dict[str, Any]],
    deleted: list[str],
    binary: set[str] | frozenset[str] = frozenset(),
) -> Applied:
    """Apply a coder's answer to ``base`` (the files as the task found them, path -> text).

    ``files`` are whole files (new ones, or rewrites of small ones), ``edits`` the blocks
    (paths already normalised), ``deleted`` the paths the task removes, ``binary`` the base
    paths that are binary (never edited or rewritten by a model). Returns the complete
    content of every file written or edited, or the reasons the answer does not apply.
    """
    result = Applied()
    limit = rewrite_max_lines()
    for path, content in files.items():
        if path in binary:
            result.errors.append(f"{path} is a binary file: it cannot be rewritten.")
        elif path in base and len(base[path].splitlines()) > limit:
            lines = len(base[path].splitlines())
            result.errors.append(
                f"{path} has {lines} lines: change it with edit blocks ('edits'), not a "
                f"whole-file rewrite (only new files and files of at most {limit} lines may be "
                "written whole)."
            )
        else:
            result.files[path] = content
    edited: dict[str, str] = {}
    for number, edit in enumerate(edits, start=1):
        path, search, replace = edit["path"], str(edit["search"]), str(edit["replace"])
        where = f"Edit {number} ({path})"
        if path in files:
            result.errors.append(f"{where}: the file is also written whole; do one or the other.")
            continue
        if path in deleted:
            result.errors.append(f"{where}: the file is also deleted; do one or the other.")
            continue
        if path in binary:
            result.errors.append(f"{where}: {path} is a binary file and cannot be edited.")
            continue
        if path not in base:
            result.errors.append(
                f"{where}: {path} does not exist; write a new file whole in 'files'."
            )
            continue
        if not search:
            result.errors.append(f"{where}: the search text is empty.")
            continue
        current = edited.get(path, base.get(path, ""))
        found = current.count(search)
        if found == 0:
            result.errors.append(
                f"{where}: the search text was not found in {path} (it must match the file's "
                f"current content exactly, whitespace included): '{_shown(search)}'."
            )
            continue
        if found > 1:
            result.errors.append(
                f"{where}: the search text occurs {found} times in {path}; give more of the "
                f"surrounding lines so that it occurs exactly once: '{_shown(search)}'."
            )
            continue
        edited[path] = current.replace(search, replace, 1)
    result.files.update(edited)
    if result.errors:
        result.files = {}
    return result
