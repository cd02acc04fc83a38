"""The Redis set of revoked session ids: a fast path in front of the database.

A sorted set scored by the moment its entry stops mattering (the last access token of the
session has expired by then). The database row stays the source of truth: the authentication
class checks the row too, so a lost or unreachable set never lets a revoked session back in.
"""

import functools
import time
from collections.abc import Iterable
from datetime import timedelta
from typing import Any

from django.conf import settings
from django_redis import get_redis_connection
from redis.exceptions import RedisError

from common.logging import get_logger

logger = get_logger(__name__)

REVOKED_SIDS_KEY = "aiflow:accounts:revoked_sids"


@functools.cache
def _redis() -> Any:
    """One client for the process: django-redis builds a new one on every call (its
    connections come from one pool either way), which showed in every request's profile."""
    return get_redis_connection("default")


def _keep_seconds() -> int:
    return int(timedelta(minutes=settings.ACCOUNTS_ACCESS_TOKEN_MINUTES).total_seconds()) + 60


def revoked_sids_add(sids: Iterable[str]) -> None:
    """Record ``sids`` as revoked (best effort; the database already says so)."""
    members = {str(sid): time.time() + _keep_seconds() for sid in sids}
    if not members:
        return
    try:
        _redis().zadd(REVOKED_SIDS_KEY, members)
    except RedisError:
        logger.warning("accounts.revoked_sids.unavailable", count=len(members))


def sid_is_revoked(sid: str) -> bool:
    """True when the set lists ``sid``; False when it does not or Redis cannot answer."""
    try:
        return _redis().zscore(REVOKED_SIDS_KEY, str(sid)) is not None
    except RedisError:
        return False


def revoked_sids_prune() -> int:
    """Drop entries whose access tokens have all expired; returns how many went."""
    return int(_redis().zremrangebyscore(REVOKED_SIDS_KEY, 0, time.time()))
