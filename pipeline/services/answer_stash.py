"""A step's last answer, kept in Redis from its arrival until the step's store carries it to
PostgreSQL.

A step's last answer is held by its ledger for the step's store (``StepLedger.hold_last``:
one statement stores the answer, its usage and the output), across the CPU work that builds
the output: 10 to 80 ms measured between the answer and the store's commit. A worker killed
in that window used to cost the call again. The held answer's ``RECORD_USAGE`` parameters
are now also written here the moment it arrives (one Redis round trip, no statement); the
step's next holder finds them (``StepLedger.recover_stashed``), stores the answer with its
usage as if it had just arrived, and replays it instead of asking the model.

Best effort: with Redis away, or after ``stash_seconds`` (twice the quiet bound, so any
resume by the reaper finds it), the call is asked again as before. Nothing deletes a key:
the store that carries the answer makes it useless (the next holder looks only at the
ordinal after the last stored call), and it expires.
"""

from __future__ import annotations

import json
import uuid
from decimal import Decimal
from typing import Any

from django.conf import settings

from common.logging import get_logger
from providers.redis_client import get_redis

logger = get_logger(__name__)

KEY = "aiflow:pipeline:held-answer:{step}:{ordinal}"


def stash_seconds() -> int:
    """How long a held answer is kept: long enough for the reaper's slowest resume."""
    return max(int(2 * float(settings.PIPELINE_QUIET_SECONDS)), 60)


def answer_stash(params: dict[str, Any]) -> None:
    """Keep a held answer's ``RECORD_USAGE`` parameters until the step's store (or expiry)."""
    key = KEY.format(step=params["step"], ordinal=params["ordinal"])
    try:
        get_redis().set(key, json.dumps(params, default=str), ex=stash_seconds())
    except Exception as exc:  # Redis away: a kill before the store costs the call again
        logger.warning("step.answer_stash_failed", error=f"{type(exc).__name__}: {exc}"[:200])


def answer_unstash(*, step_id: int, ordinal: int) -> dict[str, Any] | None:
    """The parameters of the answer held for ``step_id``'s call ``ordinal``, if a holder
    received it and died before storing it (None otherwise, or when Redis cannot tell)."""
    try:
        raw = get_redis().get(KEY.format(step=step_id, ordinal=ordinal))
    except Exception as exc:
        logger.warning("step.answer_unstash_failed", error=f"{type(exc).__name__}: {exc}"[:200])
        return None
    if raw is None:
        return None
    params: dict[str, Any] = json.loads(raw)
    params["cost"] = Decimal(params["cost"])
    params["call_key"] = uuid.UUID(params["call_key"])
    return params
