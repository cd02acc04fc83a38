"""Sliding-window counting on Redis with the ``limits`` library (moving window strategy).

One limiter per storage URL, built on first use so a settings override (tests, a dedicated
rate-limit Redis) takes effect without a restart.
"""

import math
import time
from functools import lru_cache

from django.conf import settings
from limits import RateLimitItem, parse
from limits.storage import RedisStorage
from limits.strategies import MovingWindowRateLimiter

KEY_PREFIX = "aiflow-rl"


@lru_cache(maxsize=8)
def _limiter_for(url: str) -> MovingWindowRateLimiter:
    storage = RedisStorage(
        url,
        wrap_exceptions=True,
        key_prefix=KEY_PREFIX,
        socket_connect_timeout=1,
        socket_timeout=2,
    )
    return MovingWindowRateLimiter(storage)


def limiter() -> MovingWindowRateLimiter:
    """The moving-window limiter on the configured store (the platform Redis by default)."""
    return _limiter_for(settings.ACCOUNTS_RATE_LIMIT_STORAGE_URL or settings.REDIS_URL)


@lru_cache(maxsize=64)
def rate(text: str) -> RateLimitItem:
    """``"10/minute"`` -> a limits item (fails loudly on a malformed rate)."""
    return parse(text)


def seconds_until_free(item: RateLimitItem, *identifiers: str) -> int:
    """Whole seconds (at least 1) until the window has room again."""
    stats = limiter().get_window_stats(item, *identifiers)
    return max(1, math.ceil(stats.reset_time - time.time()))
