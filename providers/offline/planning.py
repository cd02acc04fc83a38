"""The offline architect's designs and the planner's and orchestrator's answers.

A first run's design is a small Python package (``core``, ``storage``, ``cli``), or one
module per task of the DAG ``dag_set`` configured; see ``providers.offline.answers``.
"""

from __future__ import annotations

import keyword
import re
from typing import Any

_STOPWORDS = {
    "a", "an", "and", "app", "application", "build", "create", "for", "from", "in", "into",
    "is", "it", "make", "me", "of", "on", "or", "program", "python", "simple", "small", "that",
    "the", "this", "to", "tool", "with", "write", "please", "which", "test", "tests",
}  # fmt: skip


def package_name(prompt: str) -> str:
    """A Python package name derived from the prompt's first meaningful words."""
    words = [w for w in re.findall(r"[a-z]+", prompt.lower()) if w not in _STOPWORDS]
    name = "_".join(words[:2]) or "project"
    if keyword.iskeyword(name) or name in {"test", "tests", "conftest"}:
        name = f"{name}_app"
    return name


_CONFTEST = '"""Puts the project root on sys.path so the tests import the package."""\n'


def _dag_design(pkg: str, subject: str, dag: list[dict[str, Any]]) -> dict[str, Any]:
    """A design of one module per DAG task, each with one function and its test."""
    return {
        "summary": f"A Python package '{pkg}' for: {subject}, in {len(dag)} modules.",
        "package": pkg,
        "components": [
            {
                "name": task["key"],
                "purpose": f"Module {task['key']} of {subject}.",
                "files": [f"{pkg}/{task['key']}.py", f"tests/test_{task['key']}.py"],
                "depends_on": list(task.get("depends_on") or []),
            }
            for task in dag
        ],
        "interfaces": [
            {
                "path": f"{pkg}/{task['key']}.py",
                "name": f"{task['key']}_name",
                "signature": f"def {task['key']}_name() -> str",
                "description": "The module's name.",
            }
            for task in dag
        ],
        "tech_choices": ["Python 3.11, standard library only", "pytest for tests"],
        "shared_files": {
            f"{pkg}/__init__.py": f'"""{pkg}: {subject}."""\n',
            "conftest.py": _CONFTEST,
        },
        "resolutions": [],
    }


def _design(context: dict[str, Any], action: str | None) -> dict[str, Any]:
    prompt = str(context.get("prompt", ""))
    pkg = package_name(prompt)
    if context.get("dag"):
        return _dag_design(pkg, prompt.strip().rstrip(".") or "the tool", context["dag"])

    objections = [str(o) for o in context.get("objections") or []]
    subject = prompt.strip().rstrip(".") or "the requested tool"
    summary = (
        f"A small Python package '{pkg}' for: {subject}. Text is parsed into items by "
        f"'{pkg}.core', persisted as JSON by '{pkg}.storage', and driven from '{pkg}.cli'."
    )
    if objections:
        summary += f" Round {context.get('round', 2)} answers {len(objections)} objection(s)."
    interfaces = [
        (f"{pkg}/core.py", "parse_items", "def parse_items(text: str) -> list[str]",
         "Split text on commas and newlines into trimmed, non-empty items."),
        (f"{pkg}/core.py", "summarize", "def summarize(items: list[str]) -> dict[str, int]",
         "Count items case-insensitively."),
        (f"{pkg}/storage.py", "save_items", "def save_items(path: str, items: list[str]) -> None",
         "Write items to a JSON file."),
        (f"{pkg}/storage.py", "load_items", "def load_items(path: str) -> list[str]",
         "Read items back; a missing file means no items."),
        (f"{pkg}/cli.py", "main", "def main(argv: list[str] | None = None) -> int",
         "Add items from the command line to the store and print the summary as JSON."),
    ]  # fmt: skip
    return {
        "summary": summary,
        "package": pkg,
        "components": [
            {
                "name": "core",
                "purpose": f"Domain logic of {subject}: parse and summarize items.",
                "files": [f"{pkg}/core.py", "tests/test_core.py"],
                "depends_on": [],
            },
            {
                "name": "storage",
                "purpose": "Persist items as JSON; a missing file reads as empty.",
                "files": [f"{pkg}/storage.py", "tests/test_storage.py"],
                "depends_on": [],
            },
            {
                "name": "cli",
                "purpose": "Command line entry point tying core and storage together.",
                "files": [f"{pkg}/cli.py", "tests/test_cli.py"],
                "depends_on": ["core", "storage"],
            },
        ],
        "interfaces": [
            {"path": p, "name": n, "signature": s, "description": d} for p, n, s, d in interfaces
        ],
        "tech_choices": [
            "Python 3.11, standard library only",
            "pytest for tests",
            "JSON files for storage",
        ],
        "shared_files": {
            f"{pkg}/__init__.py": f'"""{pkg}: {subject}."""\n',
            "conftest.py": _CONFTEST,
        },
        "resolutions": [
            {
                "objection": objection,
                "resolution": "Addressed: load_items returns [] for a missing file (tested), "
                "and the CLI reports bad arguments through argparse (exit status 2).",
            }
            for objection in objections
        ],
    }


def _plan_review(context: dict[str, Any], action: str | None) -> dict[str, Any]:
    design = context.get("design") or {}
    if action == "object":
        return {
            "approved": False,
            "objections": [
                "The design does not say what the storage does when its file is missing, "
                "nor how the CLI reports errors."
            ],
            "tasks": [],
        }
    shared = list((design.get("shared_files") or {}).keys())
    interfaces = design.get("interfaces") or []
    tasks = []
    for component in design.get("components") or []:
        files = list(component.get("files") or [])
        owned = [i for i in interfaces if i.get("path") in files]
        spec = f"{component.get('purpose', '')} Implement: " + "; ".join(
            i.get("signature", "") for i in owned
        )
        tasks.append(
            {
                "key": component.get("name", "task"),
                "title": f"Implement {component.get('name', 'task')}",
                "spec": spec.strip(),
                "files": files + shared,
                "depends_on": list(component.get("depends_on") or []),
            }
        )
    return {"approved": True, "objections": [], "tasks": tasks}


def _orchestrate(context: dict[str, Any], action: str | None) -> dict[str, Any]:
    layers = context.get("layers") or []
    notes = []
    for index, layer in enumerate(layers):
        for task in layer:
            deps = task.get("depends_on") or []
            after = f" after {', '.join(deps)}" if deps else ""
            notes.append(
                {
                    "task": task.get("key"),
                    "note": f"Layer {index + 1}{after}: honour the design's interfaces exactly.",
                }
            )
    return {
        "summary": f"{sum(len(layer) for layer in layers)} tasks in {len(layers)} layers.",
        "notes": notes,
    }


def _consult_planner(context: dict[str, Any], action: str | None) -> dict[str, Any]:
    if action == "object":
        return {"approved": False, "objections": ["The resolution changes a task's interface."]}
    return {"approved": True, "objections": []}


BUILDERS = {
    "design": _design,
    "plan_review": _plan_review,
    "orchestrate": _orchestrate,
    "consult_planner": _consult_planner,
}
