"""The repository map: what the architect and the planner see of an imported repository.

Never the whole tree: every file's path and size; for a Python module its top-level classes
(with their methods) and functions, each with its signature, read with ``ast``; for any other
text file its name, size and line count; for a binary file its name and size only (its bytes
are never shown to a model). The map is trimmed to ``PIPELINE_REPO_MAP_TOKENS``, cheapest loss
first: methods, then the symbols of test modules, then the symbols of the largest modules,
then line counts, then paths (the second half, again and again), counting what it left out.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from typing import Any

from django.conf import settings

from .context import CHARS_PER_TOKEN, is_test_path, size_of

MAX_SYMBOLS_PER_FILE = 60
MAX_SIGNATURE_CHARS = 200


@dataclass(frozen=True)
class MapFile:
    """One file of the tree the map is made from: its size, and its text unless binary."""

    path: str
    size: int
    text: str | None  # None: binary, named only


def _clip(signature: str) -> str:
    if len(signature) <= MAX_SIGNATURE_CHARS:
        return signature
    return signature[: MAX_SIGNATURE_CHARS - 1] + "…"


def _function(node: ast.FunctionDef | ast.AsyncFunctionDef) -> str:
    prefix = "async def" if isinstance(node, ast.AsyncFunctionDef) else "def"
    returns = f" -> {ast.unparse(node.returns)}" if node.returns is not None else ""
    return _clip(f"{prefix} {node.name}({ast.unparse(node.args)}){returns}")


def python_symbols(source: str) -> list[str] | None:
    """The top-level ``class`` and ``def`` lines of a module with signatures (methods of a
    class indented under it); None when the module does not parse."""
    try:
        module = ast.parse(source)
    except (SyntaxError, ValueError):
        return None
    symbols: list[str] = []
    for node in module.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            symbols.append(_function(node))
        elif isinstance(node, ast.ClassDef):
            bases = ", ".join(ast.unparse(base) for base in node.bases)
            symbols.append(_clip(f"class {node.name}({bases})" if bases else f"class {node.name}"))
            symbols.extend(
                f"    {_function(item)}"
                for item in node.body
                if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef)
            )
    return symbols[:MAX_SYMBOLS_PER_FILE]


def _entry(item: MapFile) -> dict[str, Any]:
    entry: dict[str, Any] = {"path": item.path, "bytes": item.size}
    if item.text is None:
        entry["binary"] = True
        return entry
    entry["lines"] = len(item.text.splitlines())
    if item.path.endswith(".py"):
        symbols = python_symbols(item.text)
        if symbols is None:
            entry["note"] = "does not parse"
        elif symbols:
            entry["symbols"] = symbols
    return entry


# --- trimming, cheapest loss first ------------------------------------------------------------


def _drop_methods(repo: dict[str, Any]) -> bool:
    changed = False
    for entry in repo["files"]:
        symbols = entry.get("symbols")
        if symbols and any(line.startswith(" ") for line in symbols):
            entry["symbols"] = [line for line in symbols if not line.startswith(" ")]
            changed = True
    return changed


def _drop_test_symbols(repo: dict[str, Any]) -> bool:
    changed = False
    for entry in repo["files"]:
        if entry.get("symbols") and is_test_path(entry["path"]):
            del entry["symbols"]
            changed = True
    return changed


def _drop_largest_symbols(repo: dict[str, Any]) -> bool:
    with_symbols = [entry for entry in repo["files"] if entry.get("symbols")]
    if not with_symbols:
        return False
    largest = max(with_symbols, key=lambda entry: (size_of(entry["symbols"]), entry["path"]))
    del largest["symbols"]
    repo["omitted"]["symbols_of_files"] += 1
    return True


def _drop_line_counts(repo: dict[str, Any]) -> bool:
    changed = False
    for entry in repo["files"]:
        for key in ("lines", "note"):
            if key in entry:
                del entry[key]
                changed = True
    return changed


def _drop_paths(repo: dict[str, Any]) -> bool:
    files = repo["files"]
    if len(files) <= 1:
        return False
    keep = len(files) // 2
    repo["omitted"]["files"] += len(files) - keep
    repo["files"] = files[:keep]
    return True


_SHRINKERS = (
    _drop_methods,
    _drop_test_symbols,
    _drop_largest_symbols,
    _drop_line_counts,
    _drop_paths,
)


def budget_chars() -> int:
    """The map's budget in characters (``PIPELINE_REPO_MAP_TOKENS``, about four a token)."""
    return int(settings.PIPELINE_REPO_MAP_TOKENS) * CHARS_PER_TOKEN


def repo_map(files: list[MapFile], *, budget: int | None = None) -> dict[str, Any]:
    """The map of ``files`` within ``budget`` characters (default: the setting), as
    ``{"files": [{path, bytes, lines?, symbols?, binary?}], "total_files", "omitted"}``.

    Python modules come first (sorted by path), then the other text files, then the binary
    ones, so that when paths must go, the code is the last to go.
    """
    limit = budget_chars() if budget is None else budget

    def order(item: MapFile) -> tuple[int, str]:
        rank = 2 if item.text is None else (0 if item.path.endswith(".py") else 1)
        return rank, item.path

    repo: dict[str, Any] = {
        "files": [_entry(item) for item in sorted(files, key=order)],
        "total_files": len(files),
        "omitted": {"files": 0, "symbols_of_files": 0},
    }
    for shrink in _SHRINKERS:
        while size_of(repo) > limit and shrink(repo):
            pass
    return repo
