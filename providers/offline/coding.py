"""The offline coder's modules and tests, the tester's verdicts, the integrator's README and
the architect's conflict resolutions; see ``providers.offline.answers``."""

from __future__ import annotations

import textwrap
from typing import Any

from .planning import package_name

BUG_MARKER = "offline: deliberate bug"
STATIC_LABEL = "static review"

# Implementations and tests of the interfaces the offline architect designs. ``{pkg}`` is
# the package; the "bug" variant of summarize forgets to fold case.
_CODE: dict[str, str] = {
    "parse_items": '''
        def parse_items(text: str) -> list[str]:
            """Split text on commas and newlines into trimmed, non-empty items."""
            parts = text.replace("\\n", ",").split(",")
            return [part.strip() for part in parts if part.strip()]
        ''',
    "summarize": '''
        def summarize(items: list[str]) -> dict[str, int]:
            """Count items case-insensitively."""
            counts: dict[str, int] = {}
            for item in items:
                key = item.lower()
                counts[key] = counts.get(key, 0) + 1
            return counts
        ''',
    "summarize:bug": '''
        def summarize(items: list[str]) -> dict[str, int]:
            """Count items case-insensitively."""
            counts: dict[str, int] = {}
            for item in items:
                key = item  # offline: deliberate bug
                counts[key] = counts.get(key, 0) + 1
            return counts
        ''',
    "save_items": '''
        def save_items(path: str, items: list[str]) -> None:
            """Write items to a JSON file."""
            Path(path).write_text(json.dumps(items), encoding="utf-8")
        ''',
    "load_items": '''
        def load_items(path: str) -> list[str]:
            """Read items back; a missing file means no items."""
            file = Path(path)
            if not file.exists():
                return []
            return [str(item) for item in json.loads(file.read_text(encoding="utf-8"))]
        ''',
    "main": '''
        def main(argv: list[str] | None = None) -> int:
            """Add items from the command line to the store and print the summary as JSON."""
            parser = argparse.ArgumentParser(prog="{pkg}")
            parser.add_argument("store", help="JSON file holding the items")
            parser.add_argument("text", nargs="?", default="", help="comma-separated items")
            args = parser.parse_args(argv)
            items = load_items(args.store) + parse_items(args.text)
            save_items(args.store, items)
            print(json.dumps(summarize(items), sort_keys=True))
            return 0
        ''',
}
_IMPORTS: dict[str, str] = {
    "core.py": "",
    "storage.py": "import json\nfrom pathlib import Path\n",
    "cli.py": (
        "import argparse\nimport json\n\n"
        "from {pkg}.core import parse_items, summarize\n"
        "from {pkg}.storage import load_items, save_items\n"
    ),
}
_TESTS: dict[str, str] = {
    "core.py": """
        from {pkg}.core import parse_items, summarize


        def test_parse_items_splits_on_commas_and_newlines():
            assert parse_items("a, b\\nc,,") == ["a", "b", "c"]


        def test_summarize_counts_case_insensitively():
            assert summarize(["a", "A", "b"]) == {{"a": 2, "b": 1}}
        """,
    "storage.py": """
        from {pkg}.storage import load_items, save_items


        def test_saved_items_load_back(tmp_path):
            path = str(tmp_path / "items.json")
            save_items(path, ["x", "y"])
            assert load_items(path) == ["x", "y"]


        def test_missing_file_loads_as_no_items(tmp_path):
            assert load_items(str(tmp_path / "absent.json")) == []
        """,
    "cli.py": """
        import json

        from {pkg}.cli import main


        def test_main_adds_items_and_prints_the_summary(tmp_path, capsys):
            store = str(tmp_path / "store.json")
            assert main([store, "a, b"]) == 0
            assert main([store, "A"]) == 0
            assert json.loads(capsys.readouterr().out.splitlines()[-1]) == {{"a": 2, "b": 1}}
        """,
}


def _generic_test(module: str) -> str:
    """The test of a DAG task's module: its one function answers its own name."""
    name = f"{module}_name"
    return (
        f"from {{pkg}}.{module} import {name}\n\n\n"
        f"def test_{name}_answers_the_module_name():\n"
        f'    assert {name}() == "{module}"\n'
    )


def _module(pkg: str, path: str, names: list[str], bug: bool) -> str:

    base = path.rsplit("/", 1)[-1]
    head = f'"""{pkg}.{base[:-3]}: part of the {pkg} package."""\n'
    imports = _IMPORTS.get(base, "").format(pkg=pkg)
    bodies = []
    for name in names:
        key = f"{name}:bug" if bug and f"{name}:bug" in _CODE else name
        template = _CODE.get(key)
        if template is None and name == f"{base[:-3]}_name":
            template = (
                f'def {name}() -> str:\n    """The module\'s name."""\n    return "{base[:-3]}"\n'
            )
        if template is None:
            template = f'''
                def {name}(*args, **kwargs):
                    """Placeholder for {name}: returns its arguments."""
                    return args, kwargs
                '''
        bodies.append(textwrap.dedent(template).strip().replace("{pkg}", pkg))
    parts = [head] + ([imports + "\n"] if imports else []) + ["\n\n".join(bodies)]
    return "\n".join(parts) + "\n"


def _code(context: dict[str, Any], action: str | None) -> dict[str, Any]:
    task = context.get("task") or {}
    design = context.get("design") or {}
    pkg = design.get("package") or package_name(str(context.get("prompt", "")))
    shared = design.get("shared_files") or {}
    interfaces = design.get("interfaces") or []
    files: dict[str, str] = {}
    for path in task.get("files") or []:
        if path in shared:
            files[path] = shared[path]
        elif path.startswith("tests/test_"):
            module = path.removeprefix("tests/test_")
            template = _TESTS.get(module) or _generic_test(module[:-3])
            files[path] = textwrap.dedent(template).strip().format(pkg=pkg) + "\n"
        elif path.endswith(".py"):
            names = [i["name"] for i in interfaces if i.get("path") == path]
            if action == "mismatch":
                names = names[:-1]  # forget the module's last promised interface
            files[path] = _module(pkg, path, names, bug=action == "bug")
        else:
            files[path] = f"{task.get('title', path)}\n"
    if action == "conflict":
        # Also (wrongly) write a file of another component, with different content.
        files[f"{pkg}/core.py"] = (
            f'"""{pkg}.core as the {task.get("key")} task imagined it."""\n\n\n'
            "def parse_items(text: str) -> list[str]:\n    return text.split()\n"
        )
    notes = f"Attempt {context.get('attempt', 1)} of task {task.get('key')}."
    if context.get("feedback"):
        notes += " Fixed: " + "; ".join(str(f) for f in context["feedback"])
    return {"files": [{"path": p, "content": c} for p, c in files.items()], "notes": notes}


def _test(context: dict[str, Any], action: str | None) -> dict[str, Any]:
    report = context.get("report")
    task = (context.get("task") or {}).get("key", "task")
    if report:
        passed = bool(report.get("passed"))
        failures = [str(f) for f in report.get("failures") or []]
        summary = (
            f"Task {task}: {report.get('summary') or ('green' if passed else 'red')} "
            "(verdict from running the tests, linter and security scan)."
        )
        return {"passed": passed, "summary": summary, "failures": failures}
    files = context.get("files") or {}
    failures = [
        f"{path}: summarize must fold case (the test expects {{'a': 2, 'b': 1}})."
        for path, content in files.items()
        if BUG_MARKER in str(content)
    ]
    summary = f"{STATIC_LABEL}: task {task} " + (
        "looks correct." if not failures else f"has {len(failures)} problem(s)."
    )
    return {"passed": not failures, "summary": summary, "failures": failures}


def _integrate(context: dict[str, Any], action: str | None) -> dict[str, Any]:
    design = context.get("design") or {}
    pkg = design.get("package", "project")
    tree = context.get("tree") or []
    readme = (
        f"# {pkg}\n\n{design.get('summary', '')}\n\n"
        "## Files\n\n" + "".join(f"- `{path}`\n" for path in sorted(tree)) + "\n"
        "## Run the tests\n\n```\npython -m pytest\n```\n\n"
        "Generated by the offline model (a deterministic local stand-in for an LLM).\n"
    )
    return {
        "summary": f"Merged {len(tree)} files of {len(context.get('tasks') or [])} tasks.",
        "files": [{"path": "README.md", "content": readme}],
    }


def _consult_architect(context: dict[str, Any], action: str | None) -> dict[str, Any]:
    files = []
    for conflict in context.get("conflicts") or []:
        candidates = conflict.get("candidates") or []
        if conflict.get("type") == "path" and candidates:
            # The task that owns the path by design wins; else the first candidate.
            owner = next((c for c in candidates if c.get("owner")), candidates[0])
            files.append({"path": conflict["path"], "content": owner.get("content", "")})
        elif conflict.get("type") == "interface":
            content = str(conflict.get("content", ""))
            name = conflict.get("name", "missing")
            template = _CODE.get(name, f"def {name}(*args, **kwargs):\n    return args, kwargs\n")
            addition = textwrap.dedent(template).strip()
            files.append({"path": conflict["path"], "content": f"{content}\n\n{addition}\n"})
    return {
        "rationale": f"Kept the design's owner for {len(files)} conflicting file(s).",
        "files": files,
    }


BUILDERS = {
    "code": _code,
    "test": _test,
    "integrate": _integrate,
    "consult_architect": _consult_architect,
}
