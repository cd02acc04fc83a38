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
the coder answer from ``providers.offline.followups`` instead: a change to the base tree. On an
imported repository (a ``repo_map``, or ``repository.origin`` "import") they answer from
``providers.offline.repository``: a change planned on the map, made with edit blocks.

Tests script it through one Redis key every worker process sees (``script_set``): a list
of rules ``{"role", "action", "times"?, "task"?, "round"?, "kind"?, ...}`` consumed
atomically, first match wins; ``times`` defaults to 1, -1 means forever. Actions:

- ``object``: the planner objects (to a design, or to a conflict resolution);
- ``bug``: the coder plants a bug its own test catches;
- ``conflict``: the coder also writes another task's file, differently;
- ``mismatch``: the coder leaves out the last interface the design promised its module;
- ``regress`` (imported repository): the coder's edit blocks also break an existing function;
- ``stale`` (imported repository): the coder's edit block searches for text not in the file;
- ``error``: the call raises ``OfflineScriptedError`` with ``status_code`` (400 by default:
  a permanent provider error; 503 makes it transient).

Every call is counted per run and step key (``calls_for(run_id)``), once its answer is
made (a call cut off during its latency is not counted), so tests can prove a finished
step's model call is never made again; the last prompt each step key sent is kept too
(``prompt_for(run_id, key)``, a day), so tests can read what a model was shown.

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

The content per kind is built in ``planning`` (architect, planner, orchestrator) and
``coding`` (coder, tester, integrator, the architect's conflict resolutions). This package
imports nothing of the platform's apps: only Django settings and Redis.
"""

from __future__ import annotations

import json
import random
import re
import threading
import time
from typing import Any, cast

import redis
from django.conf import settings

from . import coding, planning

SCRIPT_KEY = "aiflow:offline:script"
DAG_KEY = "aiflow:offline:dag"
LATENCY_KEY = "aiflow:offline:latency"
CALLS_KEY = "aiflow:offline:calls:{run}"
PROMPTS_KEY = "aiflow:offline:prompts:{run}"
PROMPTS_TTL_SECONDS = 24 * 3600

_CONTEXT_RE = re.compile(r"<context>\s*(.*?)\s*</context>", re.DOTALL)

# In one round trip: count the call (KEYS[3], field ARGV[2], when given) and keep its prompt
# (KEYS[4], ARGV[3]), read the DAG (KEYS[2]), and atomically take the first rule matching the
# call (KEYS[1]): decrement its ``times`` and return it. Returns {rule or false, dag or false}.
_TAKE_RULE = """
if ARGV[2] ~= '' then
  redis.call('HINCRBY', KEYS[3], ARGV[2], 1)
  redis.call('HSET', KEYS[4], ARGV[2], ARGV[3])
  redis.call('EXPIRE', KEYS[4], ARGV[4])
end
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


def prompt_for(run_id: int, key: str) -> str | None:
    """The last prompt (its user message) step ``key`` of run ``run_id`` sent the model."""
    raw = cast(bytes | None, _redis().hget(PROMPTS_KEY.format(run=run_id), key))
    return raw.decode() if raw is not None else None


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
    call: dict[str, Any], context: dict[str, Any], prompt: str = ""
) -> tuple[dict[str, Any] | None, list[dict[str, Any]] | None]:
    """Count the call and keep its prompt, take the first matching rule, and read the DAG:
    one round trip."""
    counted = context.get("run") is not None and context.get("step")
    calls_key = CALLS_KEY.format(run=context.get("run"))
    prompts_key = PROMPTS_KEY.format(run=context.get("run"))
    field = str(context["step"]) if counted else ""
    found, dag = cast(
        list[bytes | None],
        _redis().eval(
            _TAKE_RULE,
            4,
            SCRIPT_KEY,
            DAG_KEY,
            calls_key,
            prompts_key,
            json.dumps(call),
            field,
            prompt,
            PROMPTS_TTL_SECONDS,
        ),
    )
    return (json.loads(found) if found else None), (json.loads(dag) if dag else None)


# --- the answer ------------------------------------------------------------------------------


def _last_user_text(messages: list[Any]) -> str:
    for message in reversed(messages):
        content = message.get("content", "") if isinstance(message, dict) else str(message)
        if _CONTEXT_RE.search(str(content)):
            return str(content)
    return ""


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
        _last_user_text(messages),
    )
    if dag:
        context["dag"] = dag
    if rule and rule.get("action") == "error":
        raise OfflineScriptedError(
            rule.get("message", f"offline {role} failed (scripted)"),
            status_code=int(rule.get("status_code", 400)),
        )
    action = rule.get("action") if rule else None
    from . import followups, repository  # import this module: loaded on first use

    follow_up = repository.builder_for(kind, context) or followups.builder_for(kind, context)
    if follow_up is not None and schema is not None:
        return json.dumps(follow_up(context, action))
    builder = _BUILDERS.get(kind or "")
    if builder is not None and schema is not None:
        return json.dumps(builder(context, action))
    if schema is None:
        return f"[offline model] {role}: acknowledged."
    return json.dumps(_fill(schema, schema.get("$defs", {}), role))


_BUILDERS = {**planning.BUILDERS, **coding.BUILDERS}


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
