"""What the offline model answers in a follow-up run. A labelled test double for LLMs.

A follow-up run changes an existing tree; its prompts carry that tree: the architect and
planner get ``base_tree`` (the summary of ``pipeline.context.base_tree_summary``: file
paths, public interfaces, test names, last test report), a coder ``base_files`` (the
current content of its task's files that already exist). ``answers.answer`` sends such
calls here. Whatever the prompt asks, the offline architect plans the same small change:

- **edit** an existing module: the base's ``{pkg}/core.py`` (else its first module) gains
  the first of ``top_items``, ``unique_items``, ``total_count`` it does not define yet, and
  its test module gains a test for it; everything else in both files stays as it was;
- **add** a module: ``{pkg}/report.py`` (``report_2.py``, ... when taken) with
  ``render_report`` (built on ``top_items`` when the package has it) and its tests; its task
  depends on the edit's;
- **delete** files: when the prompt says "remove X" (or delete / drop), the base's files
  named after X (``{pkg}/X.py``, ``tests/test_X.py``) go, through a task whose spec lists
  them as ``Delete these files: `a`, `b`.``

The planner plans it like any design (one task per component). The coder edits what is in
``base_files`` (appending only what is missing), writes the new files in full, and answers
``deleted`` from its task's spec. The scripted ``bug`` action plants a bug in ``top_items``.
"""

from __future__ import annotations

import re
import textwrap
from collections.abc import Callable
from typing import Any

from .planning import package_name

BUG_MARKER = "offline: deliberate bug"
DELETE_SPEC = "Delete these files: "

_DEF_NAME = re.compile(r"^(?:async\s+def|def|class)\s+(\w+)")
_DELETE_ASK = re.compile(r"\b(?:remove|delete|drop)\s+(?:the\s+|its\s+)?([a-z_][a-z0-9_]*)", re.I)
_DELETED_PATHS = re.compile(r"`([^`]+)`")


# The functions an edit adds (in this order of preference): signature, description, code,
# the code with a bug its test catches, the test.
_EXTRAS: dict[str, dict[str, str]] = {
    "top_items": {
        "signature": "def top_items(counts: dict[str, int], n: int = 3) -> list[str]",
        "description": "The n most frequent items, most frequent first, ties by name.",
        "code": '''
            def top_items(counts: dict[str, int], n: int = 3) -> list[str]:
                """The n most frequent items, most frequent first, ties by name."""
                ranked = sorted(counts, key=lambda item: (-counts[item], item))
                return ranked[:n]
            ''',
        "bug": '''
            def top_items(counts: dict[str, int], n: int = 3) -> list[str]:
                """The n most frequent items, most frequent first, ties by name."""
                ranked = sorted(counts)  # offline: deliberate bug
                return ranked[:n]
            ''',
        "test": """
            def test_top_items_ranks_by_count_then_by_name():
                assert top_items({"b": 2, "a": 2, "c": 5}, 2) == ["c", "a"]
            """,
    },
    "unique_items": {
        "signature": "def unique_items(items: list[str]) -> list[str]",
        "description": "Items without repeats (case-insensitive), first spelling kept.",
        "code": '''
            def unique_items(items: list[str]) -> list[str]:
                """Items without repeats (case-insensitive), first spelling kept."""
                seen: set[str] = set()
                kept = []
                for item in items:
                    if item.lower() not in seen:
                        seen.add(item.lower())
                        kept.append(item)
                return kept
            ''',
        "test": """
            def test_unique_items_keeps_the_first_spelling():
                assert unique_items(["a", "B", "A", "b", "c"]) == ["a", "B", "c"]
            """,
    },
    "total_count": {
        "signature": "def total_count(counts: dict[str, int]) -> int",
        "description": "How many items were counted in all.",
        "code": '''
            def total_count(counts: dict[str, int]) -> int:
                """How many items were counted in all."""
                return sum(counts.values())
            ''',
        "test": """
            def test_total_count_adds_every_count():
                assert total_count({"a": 2, "b": 3}) == 5
            """,
    },
}
_REPORT: dict[str, str] = {
    "signature": "def render_report(counts: dict[str, int]) -> str",
    "description": "One 'item: count' line per item, most frequent first.",
    "code": '''
        def render_report(counts: dict[str, int]) -> str:
            """One 'item: count' line per item, most frequent first."""
            ranked = top_items(counts, len(counts))
            return "\\n".join(f"{item}: {counts[item]}" for item in ranked)
        ''',
    "code_alone": '''
        def render_report(counts: dict[str, int]) -> str:
            """One 'item: count' line per item, most frequent first."""
            ranked = sorted(counts, key=lambda item: (-counts[item], item))
            return "\\n".join(f"{item}: {counts[item]}" for item in ranked)
        ''',
    "test": """
        def test_render_report_lists_the_most_frequent_first():
            assert render_report({"a": 1, "b": 3}) == "b: 3\\na: 1"
        """,
}
_CONFTEST = '"""Puts the project root on sys.path so the tests import the package."""\n'


def _block(template: str) -> str:
    return textwrap.dedent(template).strip()


def _is_test(path: str) -> bool:
    name = path.rsplit("/", 1)[-1]
    return name.startswith("test_") or name == "conftest.py" or path.startswith("tests/")


def _dotted(path: str) -> str:
    return path.removesuffix(".py").replace("/", ".")


def tests_path_for(module: str) -> str:
    """Where the tests of ``module`` live: ``tests/test_<stem>.py``."""
    return f"tests/test_{module.rsplit('/', 1)[-1].removesuffix('.py')}.py"


def base_paths(base_tree: dict[str, Any]) -> list[str]:
    """The file paths the summary lists (with or without their line counts)."""
    return [
        entry["path"] if isinstance(entry, dict) else str(entry)
        for entry in base_tree.get("files") or []
    ]


def base_package(paths: list[str], fallback: str) -> str:
    """The base's top-level package: the one with an ``__init__.py`` and the most modules."""
    packages: dict[str, int] = {}
    for path in paths:
        top, sep, _ = path.partition("/")
        if sep and path.endswith(".py") and not _is_test(path):
            packages[top] = packages.get(top, 0) + 1
    with_init = [name for name in packages if f"{name}/__init__.py" in paths]
    candidates = with_init or list(packages)
    if not candidates:
        return fallback
    return max(sorted(candidates), key=lambda name: packages[name])


def asked_deletions(prompt: str, paths: list[str]) -> list[str]:
    """The base files a "remove X" in the prompt names: ``.../X.py`` and ``test_X.py``."""
    words = {word.lower() for word in _DELETE_ASK.findall(prompt)}
    return [
        path
        for path in paths
        if path.endswith(".py")
        and path.rsplit("/", 1)[-1].removesuffix(".py").removeprefix("test_") in words
    ]


def _edit_target(paths: list[str], pkg: str, deleted: list[str]) -> str | None:
    if f"{pkg}/core.py" in paths and f"{pkg}/core.py" not in deleted:
        return f"{pkg}/core.py"
    modules = sorted(
        path
        for path in paths
        if path.startswith(f"{pkg}/")
        and path.endswith(".py")
        and not _is_test(path)
        and not path.endswith("__init__.py")
        and path not in deleted
    )
    return modules[0] if modules else None


def _names(signatures: list[str]) -> list[str]:
    return [m.group(1) for line in signatures if (m := _DEF_NAME.match(line))]


def _key(text: str) -> str:
    return re.sub(r"[^a-z0-9_]+", "_", text.lower()).strip("_")[:60] or "change"


def design(context: dict[str, Any], action: str | None) -> dict[str, Any]:
    """The architect's change to the base tree (see the module docstring)."""
    base = context.get("base_tree") or {}
    prompt = str(context.get("prompt", ""))
    subject = prompt.strip().rstrip(".") or "the requested change"
    paths = base_paths(base)
    pkg = base_package(paths, package_name(prompt))
    deleted = asked_deletions(prompt, paths)
    target = _edit_target(paths, pkg, deleted)
    known = base.get("interfaces") or {}
    interfaces: list[dict[str, str]] = []
    components: list[dict[str, Any]] = []
    changes: list[str] = []
    extra = None
    if target is not None:
        existing = [line for line in known.get(target) or [] if not line.startswith(" ")]
        have = _names(existing)
        extra = next((name for name in _EXTRAS if name not in have), None)
        interfaces += [
            {"path": target, "name": name, "signature": line, "description": "Kept as it is."}
            for name, line in zip(have, existing, strict=False)
        ]
    if target is not None and extra is not None:
        spec = _EXTRAS[extra]
        interfaces.append(
            {
                "path": target,
                "name": extra,
                "signature": spec["signature"],
                "description": spec["description"],
            }
        )
        components.append(
            {
                "name": f"edit_{_key(target.rsplit('/', 1)[-1].removesuffix('.py'))}",
                "purpose": f"Edit {target}, keeping what it has: add {extra}. "
                f"{spec['description']}",
                "files": [target, tests_path_for(target)],
                "depends_on": [],
            }
        )
        changes.append(f"edits {target} (adds {extra})")
    number = 1
    new_module = f"{pkg}/report.py"
    while new_module in paths:
        number += 1
        new_module = f"{pkg}/report_{number}.py"
    interfaces.append(
        {
            "path": new_module,
            "name": "render_report",
            "signature": _REPORT["signature"],
            "description": _REPORT["description"],
        }
    )
    components.append(
        {
            "name": _key(new_module.rsplit("/", 1)[-1].removesuffix(".py")),
            "purpose": f"New module {new_module}: {_REPORT['description']}",
            "files": [new_module, tests_path_for(new_module)],
            "depends_on": [components[0]["name"]] if components else [],
        }
    )
    changes.append(f"adds {new_module}")
    if deleted:
        listed = ", ".join(f"`{path}`" for path in deleted)
        components.append(
            {
                "name": f"remove_{_key('_'.join(sorted({_stem(p) for p in deleted})))}",
                "purpose": f"{DELETE_SPEC}{listed}.",
                "files": [],
                "depends_on": [],
            }
        )
        changes.append(f"deletes {', '.join(deleted)}")
    shared = {}
    if "conftest.py" not in paths:
        shared["conftest.py"] = _CONFTEST
    if f"{pkg}/__init__.py" not in paths:
        shared[f"{pkg}/__init__.py"] = f'"""{pkg}."""\n'
    objections = [str(o) for o in context.get("objections") or []]
    return {
        "summary": f"A change to the existing package '{pkg}' for: {subject}. It "
        + "; ".join(changes)
        + ". Every other file stays as it is.",
        "package": pkg,
        "components": components,
        "interfaces": interfaces,
        "tech_choices": ["Python 3.11, standard library only", "pytest for tests"],
        "shared_files": shared,
        "resolutions": [
            {"objection": o, "resolution": "Addressed in this round's change."} for o in objections
        ],
    }


def _stem(path: str) -> str:
    return path.rsplit("/", 1)[-1].removesuffix(".py").removeprefix("test_")


def _defines(content: str, name: str) -> bool:
    return bool(re.search(rf"^(?:async\s+def|def|class)\s+{re.escape(name)}\b", content, re.M))


def _with_import(content: str, line: str) -> str:
    """``content`` with ``line`` added after its last top-level import (or at the top)."""
    lines = content.splitlines()
    last = max(
        (i for i, text in enumerate(lines) if re.match(r"(from|import)\s", text)), default=-1
    )
    lines.insert(last + 1, line)
    return "\n".join(lines).rstrip("\n") + "\n"


def _module_content(
    existing: str | None, pkg: str, path: str, names: list[str], imports: str, bug: bool
) -> str:
    """The module at ``path``: ``existing`` plus the functions of ``names`` it lacks."""
    bodies = []
    for name in names:
        if existing is not None and _defines(existing, name):
            continue
        spec = _EXTRAS.get(name)
        if spec is not None:
            bodies.append(_block(spec["bug"] if bug and "bug" in spec else spec["code"]))
        elif name == "render_report":
            bodies.append(_block(_REPORT["code"] if imports else _REPORT["code_alone"]))
    if existing is not None:
        added = "\n\n\n".join(bodies)
        return existing.rstrip("\n") + ("\n\n\n" + added if added else "") + "\n"
    head = f'"""{_dotted(path)}: part of the {pkg} package."""\n'
    parts = [head] + ([imports + "\n"] if imports else []) + ["\n\n\n".join(bodies)]
    return "\n".join(parts).rstrip("\n") + "\n"


def _tests_content(existing: str | None, module: str, names: list[str]) -> str:
    """The test module of ``module``: ``existing`` plus a test for each of ``names`` lacking one."""
    tests = []
    for name in names:
        template = _EXTRAS[name]["test"] if name in _EXTRAS else _REPORT["test"]
        test = _block(template)
        test_name = _DEF_NAME.match(test)
        if existing is not None and test_name and _defines(existing, test_name.group(1)):
            continue
        tests.append((name, test))
    import_line = f"from {_dotted(module)} import {', '.join(name for name, _ in tests)}"
    if existing is None:
        body = "\n\n\n".join(test for _, test in tests)
        return f"{import_line}\n\n\n{body}\n" if tests else f"{import_line}\n"
    if not tests:
        return existing
    content = _with_import(existing, import_line)
    return content.rstrip("\n") + "\n\n\n" + "\n\n\n".join(test for _, test in tests) + "\n"


def code(context: dict[str, Any], action: str | None) -> dict[str, Any]:
    """The coder's files for a task of the change: edited, new, and deleted ones."""
    task = context.get("task") or {}
    design_ = context.get("design") or {}
    base_files: dict[str, str] = context.get("base_files") or {}
    pkg = design_.get("package") or package_name(str(context.get("prompt", "")))
    shared = design_.get("shared_files") or {}
    interfaces = design_.get("interfaces") or []
    own = list(task.get("files") or [])
    top_items_at = next((i["path"] for i in interfaces if i.get("name") == "top_items"), None)
    files: dict[str, str] = {}
    for path in own:
        if path in shared:
            files[path] = shared[path]
        elif _is_test(path):
            module = next((p for p in own if not _is_test(p) and _stem(p) == _stem(path)), None)
            names = [
                i["name"]
                for i in interfaces
                if module
                and i.get("path") == module
                and (i["name"] in _EXTRAS or i["name"] == "render_report")
            ]
            if module is not None:
                files[path] = _tests_content(base_files.get(path), module, names)
        elif path.endswith(".py"):
            names = [i["name"] for i in interfaces if i.get("path") == path]
            imports = ""
            if "render_report" in names and top_items_at and top_items_at != path:
                imports = f"from {_dotted(top_items_at)} import top_items\n"
            files[path] = _module_content(
                base_files.get(path), pkg, path, names, imports, bug=action == "bug"
            )
    spec = str(task.get("spec", ""))
    deleted: list[str] = []
    if DELETE_SPEC in spec:
        deleted = _DELETED_PATHS.findall(spec.split(DELETE_SPEC, 1)[1])
    notes = f"Attempt {context.get('attempt', 1)} of task {task.get('key')} (a change)."
    if context.get("feedback"):
        notes += " Fixed: " + "; ".join(str(f) for f in context["feedback"])
    return {
        "files": [{"path": p, "content": c} for p, c in files.items()],
        "deleted": deleted,
        "notes": notes,
    }


# Kinds whose answer differs in a follow-up; the others (planner, tester, ...) answer as in
# any run.
FOLLOW_UP_BUILDERS: dict[str, Callable[[dict[str, Any], str | None], dict[str, Any]]] = {
    "design": design,
    "code": code,
}


def builder_for(
    kind: str | None, context: dict[str, Any]
) -> Callable[[dict[str, Any], str | None], dict[str, Any]] | None:
    """The follow-up answer for ``kind`` when the call belongs to a follow-up run (its context
    carries the base tree), else None."""
    if context.get("base_tree") is None and context.get("base_files") is None:
        return None
    return FOLLOW_UP_BUILDERS.get(kind or "")
