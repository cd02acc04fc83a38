"""What the offline model answers on an imported repository. A labelled test double for LLMs.

A run on an imported repository (or a follow-up of one) gives the architect and the planner a
``repo_map`` (paths, sizes, top-level symbols with signatures) and its coders ``base_files``
with ``repository: {"origin": "import"}``; ``answers.answer`` sends such calls here. Whatever
the prompt asks, the offline architect plans the same small change:

- the **target** is a Python module of the map (not a test, ``__init__``, ``conftest`` or
  ``setup``) with a public function taking arguments: the module the prompt names (by path or
  by its name) if there is one, else the first by path;
- the change **adds** ``<fn>_all(calls)`` to it, which applies the module's first such function
  ``fn`` to each tuple of arguments (a function it has already gets the next one's), and a new
  test module for it (``tests/test_<module>_<fn>_all.py`` when the repository has ``tests/``);
- one task owns both files, named by their paths.

The coder changes the target with **edit blocks**: one whose search text is the end of the
module (as few of its last lines as occur there exactly once), replaced by the same lines and
the new function; the test module is new, so it is written whole. Scripted actions: ``regress``
adds a second block that makes ``fn`` return None (a regression the baseline's tests catch),
``stale`` gives a search text that is not in the file (an edit that does not apply). A
repository without such a module gets a new module ``change_notes.py`` and its test instead.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Callable
from typing import Any

REGRESSION_MARKER = "offline: deliberate regression"
STALE_LINE = "# offline: a line that is not in the file"
_SKIPPED_NAMES = {"__init__.py", "conftest.py", "setup.py", "__main__.py"}
_DEF = re.compile(r"^def ([A-Za-z]\w*)\((.*)\)")
_SAMPLES = {
    "int": ("2", "5"),
    "float": ("1.5", "2.5"),
    "bool": ("True",) * 2,
}


def _is_test(path: str) -> bool:
    name = path.rsplit("/", 1)[-1]
    return (
        name.startswith("test_")
        or name.endswith("_test.py")
        or name == "conftest.py"
        or "/tests/" in f"/{path}"
    )


def _stem(path: str) -> str:
    return path.rsplit("/", 1)[-1].removesuffix(".py")


def module_name(path: str) -> str:
    """The dotted name a test imports ``path`` by (``src/`` layouts without ``src``)."""
    dotted = path.removesuffix(".py").removeprefix("src/").replace("/", ".")
    return dotted.removesuffix(".__init__")


def _functions(symbols: list[str]) -> list[str]:
    """Top-level public functions that take arguments, in order."""
    names = []
    for line in symbols:
        match = _DEF.match(line)
        if match and not match.group(1).startswith("_") and match.group(2).strip():
            names.append(match.group(1))
    return names


def _candidates(repo: dict[str, Any]) -> list[tuple[str, list[str]]]:
    found = []
    for entry in repo.get("files") or []:
        path = str(entry.get("path", ""))
        if not path.endswith(".py") or _is_test(path) or path.rsplit("/", 1)[-1] in _SKIPPED_NAMES:
            continue
        functions = _functions(entry.get("symbols") or [])
        if functions:
            found.append((path, functions))
    return found


def _target(repo: dict[str, Any], prompt: str) -> tuple[str, str, str] | None:
    """``(module path, fn, new function name)`` of the change, or None."""
    words = set(re.findall(r"[a-z_][a-z0-9_]*", prompt.lower()))
    candidates = _candidates(repo)
    named = [c for c in candidates if c[0] in prompt or _stem(c[0]).lower() in words]
    for path, functions in named + candidates:
        for fn in functions:
            if f"{fn}_all" not in functions:
                return path, fn, f"{fn}_all"
    return None


def _test_path(repo: dict[str, Any], module: str, new: str) -> str:
    paths = {str(entry.get("path", "")) for entry in repo.get("files") or []}
    folder = "tests/" if any(p.startswith("tests/") for p in paths) else ""
    candidate = f"{folder}test_{_stem(module)}_{new}.py"
    number = 2
    while candidate in paths:
        candidate = f"{folder}test_{_stem(module)}_{new}_{number}.py"
        number += 1
    return candidate


def design(context: dict[str, Any], action: str | None) -> dict[str, Any]:
    """The architect's change to the imported repository (see the module docstring)."""
    repo = context.get("repo_map") or {}
    prompt = str(context.get("prompt", ""))
    subject = prompt.strip().rstrip(".") or "the requested change"
    objections = [str(o) for o in context.get("objections") or []]
    resolutions = [{"objection": o, "resolution": "Addressed in this change."} for o in objections]
    target = _target(repo, prompt)
    if target is None:
        module, fn, new = "change_notes.py", "", "change_summary"
        purpose = f"Add {module} with change_summary(), which says what was asked: {subject}."
        signature = "def change_summary() -> str"
    else:
        module, fn, new = target
        purpose = (
            f"Edit {module} with an edit block, keeping everything it has: add {new}, which "
            f"applies {fn} to each tuple of arguments in a list, in order."
        )
        signature = f"def {new}(calls: list[tuple]) -> list"
    tests = _test_path(repo, module, new)
    return {
        "summary": f"A change to the imported repository for: {subject}. It edits {module} "
        f"(adds {new}) and adds {tests}; every other file stays as it is.",
        "package": module_name(module).split(".", 1)[0],
        "components": [
            {
                "name": f"edit_{_stem(module).lower()}"[:60],
                "purpose": f"{purpose} Its tests go in {tests}.",
                "files": [module, tests],
                "depends_on": [],
            }
        ],
        "interfaces": [
            {"path": module, "name": new, "signature": signature, "description": purpose}
        ],
        "tech_choices": ["keep the repository's layout and conventions", "edit blocks"],
        "shared_files": {},
        "resolutions": resolutions,
    }


# --- the coder ------------------------------------------------------------------------------


def tail_anchor(content: str) -> str:
    """The fewest last lines of ``content`` (blank ones left out at the end) that occur in it
    exactly once: the search text of an edit that appends."""
    lines = content.splitlines(keepends=True)
    while lines and not lines[-1].strip():
        lines.pop()
    for count in range(1, len(lines) + 1):
        anchor = "".join(lines[-count:])
        if anchor.strip() and content.count(anchor) == 1:
            return anchor
    return content


def _return_edit(content: str, fn: str) -> dict[str, str] | None:
    """A block that makes ``fn`` return None (its first ``return`` line, made unique)."""
    try:
        module = ast.parse(content)
    except (SyntaxError, ValueError):
        return None
    lines = content.splitlines(keepends=True)
    for node in module.body:
        if isinstance(node, ast.FunctionDef) and node.name == fn:
            returns = sorted(
                (n for n in ast.walk(node) if isinstance(n, ast.Return)), key=lambda n: n.lineno
            )
            if not returns:
                return None
            first = returns[0].lineno
            for start in range(first, node.lineno - 1, -1):
                search = "".join(lines[start - 1 : first])
                if content.count(search) == 1:
                    indent = lines[first - 1][
                        : len(lines[first - 1]) - len(lines[first - 1].lstrip())
                    ]
                    kept = "".join(lines[start - 1 : first - 1])
                    return {
                        "search": search,
                        "replace": f"{kept}{indent}return None  # {REGRESSION_MARKER}\n",
                    }
    return None


def _samples(content: str, fn: str) -> list[str] | None:
    """Two argument lists for ``fn`` when every parameter is annotated int, float or bool
    (else None: the test does not guess what a text or an object it takes must look like)."""
    try:
        module = ast.parse(content)
    except (SyntaxError, ValueError):
        return None
    for node in module.body:
        if isinstance(node, ast.FunctionDef) and node.name == fn:
            params = node.args.posonlyargs + node.args.args
            kinds = [ast.unparse(p.annotation) if p.annotation else "" for p in params]
            if not params or any(kind not in _SAMPLES for kind in kinds):
                return None
            return ["(" + ", ".join(_SAMPLES[kind][row] for kind in kinds) + ",)" for row in (0, 1)]
    return None


def _function_code(fn: str, new: str) -> str:
    return (
        f"def {new}(calls: list[tuple]) -> list:\n"
        f'    """Apply {fn} to each tuple of arguments in ``calls``, in order."""\n'
        f"    return [{fn}(*args) for args in calls]\n"
    )


def _tests_code(module: str, fn: str, new: str, samples: list[str] | None) -> str:
    head = f"from {module_name(module)} import {fn}, {new}\n\n\n"
    body = f"def test_{new}_of_no_calls_is_empty():\n    assert {new}([]) == []\n"
    if samples:
        body += (
            f"\n\ndef test_{new}_applies_{fn}_to_each_call_in_order():\n"
            f"    calls = [{', '.join(samples)}]\n"
            f"    assert {new}(calls) == [{fn}(*args) for args in calls]\n"
        )
    return head + body


def _notes_module(prompt: str) -> tuple[str, str]:
    said = prompt.strip().replace('"', "'")[:200]
    code = (
        '"""Notes on the change asked for."""\n\n\n'
        "def change_summary() -> str:\n"
        '    """What the change was asked to do."""\n'
        f'    return "{said}"\n'
    )
    tests = (
        "from change_notes import change_summary\n\n\n"
        "def test_change_summary_is_not_empty():\n"
        "    assert change_summary()\n"
    )
    return code, tests


def code(context: dict[str, Any], action: str | None) -> dict[str, Any]:
    """The coder's answer for the change's task: edit blocks for the module, the new test."""
    task = context.get("task") or {}
    design_ = context.get("design") or {}
    base_files: dict[str, str] = context.get("base_files") or {}
    own = list(task.get("files") or [])
    interfaces = [i for i in design_.get("interfaces") or [] if i.get("path") in own]
    files: dict[str, str] = {}
    edits: list[dict[str, str]] = []
    notes = f"Attempt {context.get('attempt', 1)} of task {task.get('key')} (edit blocks)."
    if context.get("feedback"):
        notes += " Fixed: " + "; ".join(str(f) for f in context["feedback"])
    module = interfaces[0]["path"] if interfaces else (own[0] if own else "change_notes.py")
    tests = next((p for p in own if p != module), None)
    new = interfaces[0]["name"] if interfaces else "change_summary"
    content = base_files.get(module)
    if content is None:  # a module of its own: written whole
        code_text, tests_text = _notes_module(str(context.get("prompt", "")))
        files[module] = code_text
        if tests:
            files[tests] = tests_text
        return {"files": _listed(files), "edits": [], "deleted": [], "notes": notes}
    fn = new.removesuffix("_all")
    anchor = tail_anchor(content)
    search = f"{anchor.rstrip()}\n{STALE_LINE}\n" if action == "stale" else anchor
    edits.append(
        {
            "path": module,
            "search": search,
            "replace": anchor.rstrip("\n") + "\n\n\n" + _function_code(fn, new),
        }
    )
    if action == "regress":
        broken = _return_edit(content, fn)
        if broken is not None:
            edits.append({"path": module, **broken})
    if tests:
        files[tests] = _tests_code(module, fn, new, _samples(content, fn))
    return {"files": _listed(files), "edits": edits, "deleted": [], "notes": notes}


def _listed(files: dict[str, str]) -> list[dict[str, str]]:
    return [{"path": path, "content": content} for path, content in files.items()]


def builder_for(
    kind: str | None, context: dict[str, Any]
) -> Callable[[dict[str, Any], str | None], dict[str, Any]] | None:
    """The answer for ``kind`` when the call belongs to a run on an imported repository (its
    context carries a repository map, or says the repository was imported), else None."""
    if kind == "design" and context.get("repo_map") is not None:
        return design
    if kind == "code" and (context.get("repository") or {}).get("origin") == "import":
        return code
    return None
