"""DRF throttles on a true sliding window (``limits`` moving window on Redis).

- ``SlidingUserRateThrottle`` (in ``DEFAULT_THROTTLE_CLASSES``): every API call, per user
  (scope ``user``) or per client IP when anonymous (scope ``anon``).
- ``SlidingScopedRateThrottle`` (also a default): a view's ``throttle_scope``. The auth scopes
  (register, login, mfa, refresh, oauth, password_reset) count per client IP; other scopes, such as
  ``generate``, per user.
- ``GenerateRateThrottle``: the ``generate`` scope for a view that lists its throttles itself.

Rates come from ``ACCOUNTS_RATE_LIMITS``. A refusal is a 429 with ``Retry-After``. When the
store is unreachable the scopes in ``ACCOUNTS_RATE_LIMIT_FAIL_CLOSED`` answer 503; the others
let the call through (logged), so the API does not go down with the rate-limit store.
"""

import ipaddress
from typing import Any

from django.conf import settings
from limits.errors import StorageError
from rest_framework.request import Request
from rest_framework.throttling import BaseThrottle

from common.logging import get_logger

from .ratelimit import limiter, rate, seconds_until_free

logger = get_logger(__name__)

IP_SCOPES = frozenset({"register", "login", "mfa", "refresh", "oauth", "password_reset", "anon"})


def client_ip(request: Any) -> str:
    """The client address: REMOTE_ADDR, or the entry ``ACCOUNTS_NUM_PROXIES`` from the right."""
    meta = request.META
    proxies = settings.ACCOUNTS_NUM_PROXIES
    forwarded = meta.get("HTTP_X_FORWARDED_FOR", "")
    if proxies > 0 and forwarded:
        hops = [hop.strip() for hop in forwarded.split(",") if hop.strip()]
        if hops:
            return hops[-min(proxies, len(hops))]
    return meta.get("REMOTE_ADDR", "") or "unknown"


def client_ip_address(request: Any) -> str | None:
    """``client_ip`` when it is a valid IP address (what a session row stores), else None."""
    try:
        return str(ipaddress.ip_address(client_ip(request)))
    except ValueError:
        return None


class SlidingWindowThrottle(BaseThrottle):
    """Base: count one hit for (scope, identity) in a moving window."""

    scope: str | None = None

    def __init__(self) -> None:
        self._wait: float | None = None

    def get_scope(self, request: Request, view: Any) -> str | None:
        return self.scope

    def get_identity(self, request: Request, scope: str) -> str:
        user = getattr(request, "user", None)
        if scope not in IP_SCOPES and user is not None and user.is_authenticated:
            return f"user:{user.pk}"
        return f"ip:{client_ip(request)}"

    def allow_request(self, request: Request, view: Any) -> bool:
        scope = self.get_scope(request, view)
        if not scope or scope not in settings.ACCOUNTS_RATE_LIMITS:
            return True
        item = rate(settings.ACCOUNTS_RATE_LIMITS[scope])
        identity = self.get_identity(request, scope)
        try:
            if limiter().hit(item, scope, identity):
                return True
            self._wait = seconds_until_free(item, scope, identity)
        except StorageError as exc:
            if scope in settings.ACCOUNTS_RATE_LIMIT_FAIL_CLOSED:
                # Imported here: DRF loads this module while rest_framework.views (which
                # common.errors imports) is still initialising.
                from common.errors import ServiceUnavailable

                logger.warning("accounts.ratelimit.unavailable", scope=scope, fail="closed")
                raise ServiceUnavailable(
                    "Rate limiting is unavailable; try again shortly.",
                    code="rate_limit_unavailable",
                ) from exc
            logger.warning("accounts.ratelimit.unavailable", scope=scope, fail="open")
            return True
        logger.info("accounts.ratelimit.refused", scope=scope)
        return False

    def wait(self) -> float | None:
        return self._wait


class SlidingUserRateThrottle(SlidingWindowThrottle):
    """Every API call: per user, or per IP for anonymous callers."""

    def get_scope(self, request: Request, view: Any) -> str | None:
        user = getattr(request, "user", None)
        return "user" if user is not None and user.is_authenticated else "anon"


class SlidingScopedRateThrottle(SlidingWindowThrottle):
    """The view's ``throttle_scope`` (no scope, no limit)."""

    def get_scope(self, request: Request, view: Any) -> str | None:
        return getattr(view, "throttle_scope", None)


class GenerateRateThrottle(SlidingWindowThrottle):
    """Project generation: tighter, per user."""

    scope = "generate"


def scope_hit(request: Any, scope: str) -> int | None:
    """For plain Django views: count a hit; seconds to wait when refused, else None.

    Raises ``ServiceUnavailable`` when the store is down and the scope fails closed.
    """
    throttle = SlidingWindowThrottle()
    throttle.scope = scope
    if throttle.allow_request(request, None):
        return None
    return int(throttle.wait() or 1)
