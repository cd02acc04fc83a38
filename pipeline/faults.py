"""Fault points: named moments where a fault test may hold a worker, to kill it right there.

Off unless ``PIPELINE_FAULT_POINTS`` is set (only fault tests set it, for the worker
processes they start): then each point looks up one Redis key of rules, so the moment a
test needs (say, just after a model's answer was stored and before its step ended) is
reached deterministically instead of by luck. A rule is ``{"point", "step"?, "seconds",
"times"?}``; the first match is taken (``times`` defaults to 1, -1 means forever), the
worker records that it is held (``fault_held``) and sleeps ``seconds``.

Points: ``answer_stored`` (a model call's answer and usage were just committed: a step's
last answer with the step's output, any other on its own) and ``answer_held`` (a step's last
answer arrived and is held for the step's store, which follows with no slow work between: a
kill here loses the answer, and the call is made again).
"""

from __future__ import annotations

import json
import time
from typing import Any, cast

from django.conf import settings

from providers.redis_client import get_redis

FAULTS_KEY = "aiflow:pipeline:faults"
HELD_KEY = "aiflow:pipeline:faults:held"

# Atomically take the first rule matching the point: decrement its ``times``, return it.
_TAKE_RULE = """
local raw = redis.call('GET', KEYS[1])
if not raw then return false end
local rules = cjson.decode(raw)
local point = cjson.decode(ARGV[1])
for _, rule in ipairs(rules) do
  local times = rule['times'] or 1
  local step_ok = rule['step'] == nil or rule['step'] == point['step']
  if rule['point'] == point['point'] and step_ok and times ~= 0 then
    if times > 0 then rule['times'] = times - 1 end
    redis.call('SET', KEYS[1], cjson.encode(rules))
    return cjson.encode(rule)
  end
end
return false
"""


def fault_point(name: str, *, step_key: str) -> None:
    """Hold here if a fault test asked for it (a no-op unless PIPELINE_FAULT_POINTS)."""
    if not settings.PIPELINE_FAULT_POINTS:
        return
    client = get_redis()
    found = cast(
        bytes | None,
        client.eval(_TAKE_RULE, 1, FAULTS_KEY, json.dumps({"point": name, "step": step_key})),
    )
    if not found:
        return
    rule = json.loads(found)
    client.rpush(HELD_KEY, json.dumps({"point": name, "step": step_key}))
    time.sleep(float(rule.get("seconds", 60)))


def fault_script_set(rules: list[dict[str, Any]]) -> None:
    """Replace the fault rules (see the module docstring)."""
    client = get_redis()
    client.delete(HELD_KEY)
    client.set(FAULTS_KEY, json.dumps(rules))


def fault_held() -> list[dict[str, str]]:
    """The points where a worker was held so far, in order."""
    raw = cast(list[bytes], get_redis().lrange(HELD_KEY, 0, -1))
    return [json.loads(item) for item in raw]
