"""What the offline model answers, per role. A labelled test double for LLMs.

``answer(role=, messages=, schema=)`` returns the model's text: JSON matching ``schema``
(a JSON Schema dict) when one is given, plain text otherwise. The pipeline's prompts carry
their context as JSON between ``<context>`` tags (``context["kind"]`` says what is asked);
from it the offline model derives real content:

- ``design`` (architect): a small Python package for the prompt: ``core``, ``storage`` and
  ``cli`` components, their files, interfaces and technology choices, and a resolution for
  every objection of the previous round;
- ``plan_review`` (planner): approval plus a DAG of one task per component (``core`` and
  ``storage`` independent, ``cli`` depending on both), or objections when scripted;
- ``code`` (coder): working modules *and* pytest tests that pass;
- ``test`` (tester): a verdict from the sandbox report when there is one, otherwise a static
  review that spots the deliberate bug a scripted coder plants;
- ``integrate``, ``consult_architect``, ``consult_planner``, ``orchestrate``.

In a follow-up run (the context carries ``base_tree`` or ``base_files``) the architect and
the coder answer from ``providers.offline.followups`` instead: a change to the base tree.

Tests script it through one Redis key every worker process sees (``script_set``): a list
of rules ``{"role", "action", "times"?, "task"?, "round"?, "kind"?, ...}`` consumed
atomically, first match wins; ``times`` defaults to 1, -1 means forever. Actions:

- ``object``: the planner objects (to a design, or to a conflict resolution);
- ``bug``: the coder plants a bug its own test catches;
- ``conflict``: the coder also writes another task's file, differently;
- ``mismatch``: the coder leaves out the last interface the design promised its module;
- ``error``: the call raises ``OfflineScriptedError`` with ``status_code`` (400 by default:
  a permanent provider error; 503 makes it transient).

Every call is counted per run and step key (``calls_for(run_id)``), once its answer is
made (a call cut off during its latency is not counted), so tests can prove a finished
step's model call is never made again.

Shapes and latencies, for tests and benchmarks (also through Redis, seen by every worker):

- ``dag_set(tasks)`` makes the architect design one component per task and the planner
  approve exactly that DAG: ``tasks`` is ``[{"key", "depends_on": [keys]}]``;
  ``dag_layers([4, 4, 4], fan_in=2, seed=1)`` builds such a list: L layers of the given
  widths, keys ``t<layer>_<i>``, each task of a later layer depending on ``fan_in``
  tasks of the layer before it (chosen with ``random.Random(seed)``). Every task gets
  one module with one function and a passing test, so runs integrate without conflicts.
- ``latency_set(tasks={key: ms}, roles={role: ms}, spread_ms=(lo, hi), seed=0,
  default_ms=None)`` sets how long each call takes: the task's own latency (its coder's
  and tester's calls), else the role's, else a seeded draw in ``spread_ms`` per step key
  (the same step always takes the same time), else ``default_ms``, else
  ``OFFLINE_LATENCY_MS``. ``latency_clear()`` and ``dag_clear()`` undo them.

This module imports nothing of the platform's apps: only Django settings and Redis.
"""

from __future__ import annotations

import json
import keyword
import random
import re
import textwrap
import threading
import time
from typing import Any, cast

import redis
from django.conf import settings

SCRIPT_KEY = "aiflow:offline:script"
DAG_KEY = "aiflow:offline:dag"
LATENCY_KEY = "aiflow:offline:latency"
CALLS_KEY = "aiflow:offline:calls:{run}"
BUG_MARKER = "offline: deliberate bug"
STATIC_LABEL = "static review"

_CONTEXT_RE = re.compile(r"<context>\s*(.*?)\s*</context>", re.DOTALL)
_STOPWORDS = {
    "a", "an", "and", "app", "application", "build", "create", "for", "from", "in", "into",
    "is", "it", "make", "me", "of", "on", "or", "program", "python", "simple", "small", "that",
    "the", "this", "to", "tool", "with", "write", "please", "which", "test", "tests",
}  # fmt: skip

# In one round trip: count the call (KEYS[3], field ARGV[2], when given), read the DAG
# (KEYS[2]), and atomically take the first rule matching the call (KEYS[1]): decrement its
# ``times`` and return it. Returns {rule or false, dag or false}.
_TAKE_RULE = """
if ARGV[2] ~= '' then redis.call('HINCRBY', KEYS[3], ARGV[2], 1) end
local dag = redis.call('GET', KEYS[2])
local raw = redis.call('GET', KEYS[1])
if not raw then return {false, dag} end
local rules = cjson.decode(raw)
local call = cjson.decode(ARGV[1])
for _, rule in ipairs(rules) do
  local ok = true
  for _, field in ipairs({'role', 'task', 'kind', 'round', 'run'}) do
    if rule[field] ~= nil and rule[field] ~= call[field] then ok = false end
  end
  local times = rule['times'] or 1
  if ok and times ~= 0 then
    if times > 0 then rule['times'] = times - 1 end
    redis.call('SET', KEYS[1], cjson.encode(rules))
    return {cjson.encode(rule), dag}
  end
end
return {false, dag}
"""

_lock = threading.Lock()
_clients: dict[str, redis.Redis] = {}


class OfflineScriptedError(Exception):
    """A provider failure a test scripted; ``status_code`` says permanent (4xx) or not."""

    def __init__(self, message: str, *, status_code: int = 400):
        super().__init__(message)
        self.status_code = status_code


def _redis() -> redis.Redis:
    url = settings.REDIS_URL
    client = _clients.get(url)
    if client is None:
        with _lock:
            client = _clients.setdefault(
                url, redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=5)
            )
    return client


# --- scripting and counting (used by tests) ------------------------------------------------


def script_set(rules: list[dict[str, Any]]) -> None:
    """Replace the script every offline call consults (see the module docstring)."""
    _redis().set(SCRIPT_KEY, json.dumps(rules))


def script_clear() -> None:
    _redis().delete(SCRIPT_KEY)


def calls_for(run_id: int) -> dict[str, int]:
    """How many offline calls each step key of run ``run_id`` has made."""
    raw = cast(dict[bytes, bytes], _redis().hgetall(CALLS_KEY.format(run=run_id)))
    return {key.decode(): int(value) for key, value in raw.items()}


def dag_layers(layers: list[int], *, fan_in: int = 2, seed: int = 0) -> list[dict[str, Any]]:
    """A DAG of ``len(layers)`` layers of the given widths (see the module docstring)."""
    rng = random.Random(seed)  # noqa: S311 - a seeded shape, not a secret
    tasks: list[dict[str, Any]] = []
    previous: list[str] = []
    for index, width in enumerate(layers):
        keys = [f"t{index}_{i}" for i in range(width)]
        for key in keys:
            depends = sorted(rng.sample(previous, min(fan_in, len(previous)))) if previous else []
            tasks.append({"key": key, "depends_on": depends})
        previous = keys
    return tasks


def dag_set(tasks: list[dict[str, Any]]) -> None:
    """Make the offline architect and planner design and approve exactly this DAG."""
    _redis().set(DAG_KEY, json.dumps(tasks))


def dag_clear() -> None:
    _redis().delete(DAG_KEY)


def latency_set(
    *,
    tasks: dict[str, int] | None = None,
    roles: dict[str, int] | None = None,
    spread_ms: tuple[int, int] | None = None,
    seed: int = 0,
    default_ms: int | None = None,
) -> None:
    """Set how long offline calls take (see the module docstring)."""
    config = {
        "tasks": tasks or {},
        "roles": roles or {},
        "spread_ms": list(spread_ms) if spread_ms else None,
        "seed": seed,
        "default_ms": default_ms,
    }
    _redis().set(LATENCY_KEY, json.dumps(config))


def latency_clear() -> None:
    _redis().delete(LATENCY_KEY)


def _task_key(context: dict[str, Any]) -> str | None:
    task = context.get("task")
    return task.get("key") if isinstance(task, dict) else None


def latency_ms(*, role: str, context: dict[str, Any], default_ms: int) -> int:
    """How long this call takes, from ``latency_set``'s configuration (or ``default_ms``)."""
    raw = cast(bytes | None, _redis().get(LATENCY_KEY))
    if not raw:
        return default_ms
    config = json.loads(raw)
    task = _task_key(context)
    if task is not None and task in config["tasks"]:
        return int(config["tasks"][task])
    if role in config["roles"]:
        return int(config["roles"][role])
    if config.get("spread_ms"):
        low, high = config["spread_ms"]
        return random.Random(f"{config['seed']}:{context.get('step')}").randint(low, high)  # noqa: S311
    if config.get("default_ms") is not None:
        return int(config["default_ms"])
    return default_ms


def _take_rule(
    call: dict[str, Any], context: dict[str, Any]
) -> tuple[dict[str, Any] | None, list[dict[str, Any]] | None]:
    """Count the call, take the first matching rule, and read the DAG: one round trip."""
    counted = context.get("run") is not None and context.get("step")
    calls_key = CALLS_KEY.format(run=context.get("run"))
    field = str(context["step"]) if counted else ""
    found, dag = cast(
        list[bytes | None],
        _redis().eval(_TAKE_RULE, 3, SCRIPT_KEY, DAG_KEY, calls_key, json.dumps(call), field),
    )
    return (json.loads(found) if found else None), (json.loads(dag) if dag else None)


# --- the answer ------------------------------------------------------------------------------


def _context(messages: list[Any]) -> dict[str, Any]:
    for message in reversed(messages):
        content = message.get("content", "") if isinstance(message, dict) else str(message)
        match = _CONTEXT_RE.search(str(content))
        if match:
            try:
                value = json.loads(match.group(1))
            except ValueError:
                return {}
            return value if isinstance(value, dict) else {}
    return {}


def answer(
    *, role: str, messages: list[Any], schema: dict[str, Any] | None, latency_ms_default: int = 0
) -> str:
    """The offline model's answer for ``role``, after its latency (see module docstring)."""
    context = _context(messages)
    delay = latency_ms(role=role, context=context, default_ms=latency_ms_default)
    if delay > 0:
        time.sleep(delay / 1000)
    kind = context.get("kind")
    rule, dag = _take_rule(
        {
            "role": role,
            "kind": kind,
            "task": _task_key(context),
            "round": context.get("round"),
            "run": context.get("run"),
        },
        context,
    )
    if dag:
        context["dag"] = dag
    if rule and rule.get("action") == "error":
        raise OfflineScriptedError(
            rule.get("message", f"offline {role} failed (scripted)"),
            status_code=int(rule.get("status_code", 400)),
        )
    action = rule.get("action") if rule else None
    from . import followups  # imports this module: loaded on first use

    follow_up = followups.builder_for(kind, context)
    if follow_up is not None and schema is not None:
        return json.dumps(follow_up(context, action))
    builder = _BUILDERS.get(kind or "")
    if builder is not None and schema is not None:
        return json.dumps(builder(context, action))
    if schema is None:
        return f"[offline model] {role}: acknowledged."
    return json.dumps(_fill(schema, schema.get("$defs", {}), role))


# --- per-kind content ------------------------------------------------------------------------


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


def _consult_planner(context: dict[str, Any], action: str | None) -> dict[str, Any]:
    if action == "object":
        return {"approved": False, "objections": ["The resolution changes a task's interface."]}
    return {"approved": True, "objections": []}


_BUILDERS = {
    "design": _design,
    "plan_review": _plan_review,
    "orchestrate": _orchestrate,
    "code": _code,
    "test": _test,
    "integrate": _integrate,
    "consult_architect": _consult_architect,
    "consult_planner": _consult_planner,
}


def _fill(schema: dict[str, Any], defs: dict[str, Any], hint: str) -> Any:
    """A generic, valid filling of ``schema`` for prompts this module does not know."""
    if "$ref" in schema:
        return _fill(defs[schema["$ref"].split("/")[-1]], defs, hint)
    for combo in ("anyOf", "oneOf", "allOf"):
        if combo in schema:
            options = [s for s in schema[combo] if s.get("type") != "null"] or schema[combo]
            return _fill(options[0], defs, hint)
    if "default" in schema:
        return schema["default"]
    if "enum" in schema:
        return schema["enum"][0]
    kind = schema.get("type", "object")
    if kind == "object":
        props = schema.get("properties", {})
        return {name: _fill(sub, defs, name) for name, sub in props.items()}
    if kind == "array":
        return [_fill(schema.get("items", {}), defs, hint)]
    if kind == "integer":
        return 1
    if kind == "number":
        return 1.0
    if kind == "boolean":
        return True
    return f"offline {hint}"
