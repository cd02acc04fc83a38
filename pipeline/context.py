"""What each role's prompt carries, trimmed to the context budget.

A 30-task project must not resend everything to every step: a coder gets the design's
summary, the interfaces that touch its files, its own task and the modules of the tasks it
depends on; the tester its task's files; the integrator the tree's paths. When that is still
more than ``PIPELINE_CONTEXT_BUDGET_TOKENS``, file contents shrink first to their signatures
(``def``/``class`` lines), then to a note that they were omitted.

A follow-up run's architect and planner get ``base_tree_summary`` of the tree they change:
its paths, public interfaces, test names and last test report, shrunk to fit likewise.
"""

import ast
import json
import re
from typing import Any

from django.conf import settings

CHARS_PER_TOKEN = 4
# Room kept for the note naming the files that did not fit.
OMITTED_NOTE_CHARS = 300
_SIGNATURE = re.compile(r"^\s*(?:async\s+def|def|class)\s+\w+.*$", re.MULTILINE)


def budget_chars() -> int:
    """The context budget in characters (about four a token)."""
    return int(settings.PIPELINE_CONTEXT_BUDGET_TOKENS) * CHARS_PER_TOKEN


def size_of(value: Any) -> int:
    """Characters ``value`` takes in a prompt."""
    return len(json.dumps(value, ensure_ascii=False, default=str))


def signatures_of(content: str) -> str:
    """Only the ``def`` and ``class`` lines of a Python file."""
    lines = _SIGNATURE.findall(content)
    return "\n".join(line.rstrip() for line in lines) or content[:200]


def trim_files(files: dict[str, str], budget: int) -> dict[str, str]:
    """``files`` made to fit ``budget`` characters (as JSON): full, then signatures, then out.

    Smaller files keep their full content first, so one huge file cannot crowd out the rest;
    files that do not fit even as signatures are left out and named under ``(omitted)``.
    """
    kept: dict[str, str] = {}
    omitted: list[str] = []
    remaining = budget - OMITTED_NOTE_CHARS
    for path in sorted(files, key=lambda p: len(files[p])):
        content = files[path]
        brief = signatures_of(content) if path.endswith(".py") else content[:200]
        for candidate in (content, f"# (trimmed to signatures)\n{brief}"):
            cost = size_of({path: candidate})
            if cost <= remaining:
                kept[path] = candidate
                remaining -= cost
                break
        else:
            omitted.append(path)
    result = {path: kept[path] for path in files if path in kept}
    if omitted:
        names = ", ".join(omitted)
        result["(omitted)"] = truncate(f"{len(omitted)} file(s): {names}", OMITTED_NOTE_CHARS - 60)
    return result


def design_brief(design: dict[str, Any], *, paths: set[str] | None = None) -> dict[str, Any]:
    """The design as one step needs it: interfaces only for ``paths`` (all when None)."""
    interfaces = design.get("interfaces") or []
    if paths is not None:
        interfaces = [item for item in interfaces if item.get("path") in paths]
    return {
        "summary": design.get("summary", ""),
        "package": design.get("package", ""),
        "tech_choices": design.get("tech_choices") or [],
        "components": [
            {"name": c.get("name"), "purpose": c.get("purpose"), "files": c.get("files")}
            for c in design.get("components") or []
        ],
        "interfaces": interfaces,
        "shared_files": design.get("shared_files") or {},
    }


def fit(context: dict[str, Any], *, files_keys: tuple[str, ...]) -> dict[str, Any]:
    """Trim the file maps named by ``files_keys`` so that ``context`` fits the budget."""
    budget = budget_chars()
    fixed = size_of({k: v for k, v in context.items() if k not in files_keys})
    room = max(budget - fixed, 0)
    share = room // max(len(files_keys), 1)
    for key in files_keys:
        files = context.get(key) or {}
        if size_of(files) > share:
            context[key] = trim_files(files, share)
    return context


def truncate(text: str, limit: int = 4000) -> str:
    """``text`` cut to ``limit`` characters, saying so."""
    return text if len(text) <= limit else f"{text[:limit]}\n[... {len(text) - limit} more]"


# --- the base tree of a follow-up run ----------------------------------------------------------

# Failures of the last test report shown to the architect and planner, and their length.
REPORT_FAILURES = 10
REPORT_FAILURE_CHARS = 300


def is_test_path(path: str) -> bool:
    """Whether pytest would collect ``path`` as a test module (or it configures the tests)."""
    name = path.rsplit("/", 1)[-1]
    return (
        name.startswith("test_")
        or name.endswith("_test.py")
        or name == "conftest.py"
        or "/tests/" in f"/{path}"
    )


def _function_signature(node: ast.FunctionDef | ast.AsyncFunctionDef) -> str:
    prefix = "async def" if isinstance(node, ast.AsyncFunctionDef) else "def"
    returns = f" -> {ast.unparse(node.returns)}" if node.returns is not None else ""
    return f"{prefix} {node.name}({ast.unparse(node.args)}){returns}"


def public_interfaces(content: str) -> list[str]:
    """The public ``def``/``class`` signatures of a Python module (methods indented).

    Names starting with ``_`` are private, except ``__init__`` of a public class. A module
    that does not parse falls back to its ``def``/``class`` lines.
    """
    try:
        module = ast.parse(content)
    except (SyntaxError, ValueError):
        return [line.strip() for line in _SIGNATURE.findall(content)]
    found: list[str] = []
    for node in module.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            if not node.name.startswith("_"):
                found.append(_function_signature(node))
        elif isinstance(node, ast.ClassDef) and not node.name.startswith("_"):
            bases = ", ".join(ast.unparse(base) for base in node.bases)
            found.append(f"class {node.name}({bases})" if bases else f"class {node.name}")
            for item in node.body:
                if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef) and (
                    not item.name.startswith("_") or item.name == "__init__"
                ):
                    found.append(f"    {_function_signature(item)}")
    return found


def collected_test_names(content: str) -> list[str]:
    """The pytest tests a module defines: ``test_x`` functions and ``TestY::test_z`` methods."""
    try:
        module = ast.parse(content)
    except (SyntaxError, ValueError):
        return re.findall(r"^(?:async\s+)?def\s+(test\w*)", content, re.MULTILINE)
    names: list[str] = []
    for node in module.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name.startswith(
            "test"
        ):
            names.append(node.name)
        elif isinstance(node, ast.ClassDef) and node.name.startswith("Test"):
            names.extend(
                f"{node.name}::{item.name}"
                for item in node.body
                if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef)
                and item.name.startswith("test")
            )
    return names


def _report_brief(report: dict[str, Any] | None) -> dict[str, Any] | None:
    if report is None:
        return None
    failures = [truncate(str(f), REPORT_FAILURE_CHARS) for f in report.get("failures") or []]
    return {
        "suite": report.get("suite", ""),
        "mode": report.get("mode", ""),
        "passed": report.get("passed"),
        "summary": truncate(str(report.get("summary", "")), 500),
        "failures": failures[:REPORT_FAILURES],
    }


def _shrink_report(summary: dict[str, Any]) -> bool:
    report = summary.get("last_report")
    if not report or not report.get("failures"):
        return False
    report["failures"] = report["failures"][: len(report["failures"]) // 2]
    return True


def _shrink_tests(summary: dict[str, Any]) -> bool:
    """Test names become a count per module."""
    tests = summary["tests"]
    if not any(isinstance(names, list) for names in tests.values()):
        return False
    summary["tests"] = {
        path: len(names) if isinstance(names, list) else names for path, names in tests.items()
    }
    return True


def _shrink_methods(summary: dict[str, Any]) -> bool:
    """Classes keep their own line, not their methods'."""
    interfaces = summary["interfaces"]
    changed = False
    for path, lines in interfaces.items():
        top = [line for line in lines if not line.startswith(" ")]
        if len(top) < len(lines):
            interfaces[path] = top
            changed = True
    return changed


def _shrink_test_modules(summary: dict[str, Any]) -> bool:
    """The per-module test counts become one total."""
    tests = summary["tests"]
    if not isinstance(tests, dict) or not tests:
        return False
    summary["tests"] = {"(all test modules)": sum(int(count) for count in tests.values())}
    return len(tests) > 1


def _shrink_interfaces(summary: dict[str, Any]) -> bool:
    """Drop the interfaces of the module that lists the most."""
    interfaces = summary["interfaces"]
    if not interfaces:
        return False
    del interfaces[max(interfaces, key=lambda p: (size_of(interfaces[p]), p))]
    summary["omitted"]["interfaces_of_modules"] += 1
    return True


def _shrink_files(summary: dict[str, Any]) -> bool:
    """Line counts go, then the second half of the paths, again and again."""
    files = summary["files"]
    if files and isinstance(files[0], dict):
        summary["files"] = [entry["path"] for entry in files]
        return True
    if len(files) <= 1:
        return False
    keep = len(files) // 2
    summary["omitted"]["file_paths"] += len(files) - keep
    summary["files"] = files[:keep]
    return True


# Cheapest loss first: report details, test names, methods, test modules, whole modules'
# interfaces, and last the file list itself.
_SHRINKERS = (
    _shrink_report,
    _shrink_tests,
    _shrink_methods,
    _shrink_test_modules,
    _shrink_interfaces,
    _shrink_files,
)


def base_tree_summary(
    files: dict[str, str],
    *,
    last_report: dict[str, Any] | None = None,
    budget: int | None = None,
) -> dict[str, Any]:
    """What the architect and planner of a follow-up run see of the tree they change.

    ``files`` is the base run's tree (path -> text); ``last_report`` the brief of its last
    test run (``{"suite", "mode", "passed", "summary", "failures"}``). The summary holds
    every file path with its line count, the public interfaces (``def``/``class``
    signatures) of each non-test Python module, the test names of each test module and the
    last test report. When that is more than ``budget`` characters (by default half the
    context budget, leaving the rest of the prompt its room) it shrinks, cheapest loss
    first (see ``_SHRINKERS``), and counts what it left out under ``omitted``.
    """
    limit = budget_chars() // 2 if budget is None else budget
    summary: dict[str, Any] = {
        "files": [{"path": path, "lines": len(files[path].splitlines())} for path in sorted(files)],
        "interfaces": {},
        "tests": {},
        "last_report": _report_brief(last_report),
        "omitted": {"interfaces_of_modules": 0, "file_paths": 0},
    }
    for path in sorted(files):
        if not path.endswith(".py"):
            continue
        if is_test_path(path):
            names = collected_test_names(files[path])
            if names:
                summary["tests"][path] = names
        else:
            signatures = public_interfaces(files[path])
            if signatures:
                summary["interfaces"][path] = signatures
    for shrink in _SHRINKERS:
        while size_of(summary) > limit and shrink(summary):
            pass
    return summary
