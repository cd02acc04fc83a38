"""Rows for showing a unified diff (``artifact_tree_diff``'s text) unified or side by side.

Each row is a dict the diff template renders: ``kind`` is ``hunk``, ``same``, ``add``,
``del`` or (side by side) ``change``; line numbers are ``None`` where a side has no line.
"""

import re
from typing import Any

_HUNK = re.compile(r"^@@ -(\d+)(?:,\d+)? \+(\d+)(?:,\d+)? @@(.*)$")


def _parsed(text: str) -> list[tuple[str, str]]:
    """(marker, line) pairs after the ``---``/``+++`` headers; markers ``@`` `` `` ``-`` ``+``."""
    lines = text.splitlines()
    out: list[tuple[str, str]] = []
    for line in lines:
        if line.startswith(("--- ", "+++ ")) and not out:
            continue
        if line.startswith("\\"):  # "\ No newline at end of file"
            continue
        if line.startswith("@@"):
            out.append(("@", line))
        elif line[:1] in (" ", "-", "+"):
            out.append((line[0], line[1:]))
        elif line == "":
            out.append((" ", ""))
    return out


def diff_rows_unified(text: str) -> list[dict[str, Any]]:
    """One row per diff line with the old and new line numbers."""
    rows: list[dict[str, Any]] = []
    old = new = 0
    for marker, line in _parsed(text):
        if marker == "@":
            match = _HUNK.match(line)
            if match:
                old, new = int(match.group(1)), int(match.group(2))
            rows.append({"kind": "hunk", "text": line})
        elif marker == " ":
            rows.append({"kind": "same", "old": old, "new": new, "text": line})
            old, new = old + 1, new + 1
        elif marker == "-":
            rows.append({"kind": "del", "old": old, "new": None, "text": line})
            old += 1
        else:
            rows.append({"kind": "add", "old": None, "new": new, "text": line})
            new += 1
    return rows


def diff_rows_side_by_side(text: str) -> list[dict[str, Any]]:
    """Rows of (old line, new line); a run of deletions pairs with the additions after it."""
    rows: list[dict[str, Any]] = []
    old = new = 0
    removed: list[tuple[int, str]] = []
    added: list[tuple[int, str]] = []

    def flush() -> None:
        for index in range(max(len(removed), len(added))):
            left = removed[index] if index < len(removed) else None
            right = added[index] if index < len(added) else None
            rows.append(
                {
                    "kind": "change",
                    "old": left[0] if left else None,
                    "left": left[1] if left else None,
                    "new": right[0] if right else None,
                    "right": right[1] if right else None,
                }
            )
        removed.clear()
        added.clear()

    for marker, line in _parsed(text):
        if marker == "-":
            removed.append((old, line))
            old += 1
            continue
        if marker == "+":
            added.append((new, line))
            new += 1
            continue
        flush()
        if marker == "@":
            match = _HUNK.match(line)
            if match:
                old, new = int(match.group(1)), int(match.group(2))
            rows.append({"kind": "hunk", "text": line})
        else:
            rows.append({"kind": "same", "old": old, "left": line, "new": new, "right": line})
            old, new = old + 1, new + 1
    flush()
    return rows
