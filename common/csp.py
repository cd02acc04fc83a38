"""django-csp's middleware with the policy built once while nothing per-request changes it.

``csp.middleware.CSPMiddleware`` rebuilds the header from settings on every response (a
copy of every directive, sorting, joining, plus ``dataclasses.asdict`` of its parts): a
visible share of a small API call's CPU in the profile. When the request drew no nonce and
the response carries no ``@csp``/``@csp_update``/``@csp_replace`` override, the policy
depends on settings alone: it is built once per process (again after a settings change, as
in tests). Everything else is django-csp 4.0's ``process_response``, unchanged.
"""

from __future__ import annotations

import functools
import http.client
from dataclasses import asdict
from typing import Any

from csp.constants import HEADER, HEADER_REPORT_ONLY
from csp.middleware import CheckableLazyObject, CSPMiddleware
from csp.utils import build_policy
from django.conf import settings
from django.core.signals import setting_changed
from django.dispatch import receiver
from django.http import HttpRequest, HttpResponseBase

_EXEMPTED_DEBUG_CODES = (http.client.INTERNAL_SERVER_ERROR, http.client.NOT_FOUND)


@functools.cache
def settings_policy(report_only: bool) -> str:
    """The policy of the settings alone (no nonce, no per-view override)."""
    return build_policy(report_only=report_only)


@receiver(setting_changed)
def _forget_policy(*, setting: str, **_: Any) -> None:
    if setting.startswith("CONTENT_SECURITY_POLICY"):
        settings_policy.cache_clear()


class CachedPolicyCSPMiddleware(CSPMiddleware):
    """``CSPMiddleware``, with the settings-only policy built once."""

    def _policy(
        self, request: HttpRequest, response: HttpResponseBase, *, report_only: bool
    ) -> str:
        suffix = "_ro" if report_only else ""
        if getattr(request, "_csp_nonce", None) is None and all(
            getattr(response, f"_csp_{kind}{suffix}", None) is None
            for kind in ("config", "update", "replace")
        ):
            return settings_policy(report_only)
        parts = self.get_policy_parts(request=request, response=response, report_only=report_only)
        return build_policy(**asdict(parts), report_only=report_only)

    def _set(self, request: HttpRequest, response: HttpResponseBase, *, report_only: bool) -> None:
        policy = self._policy(request, response, report_only=report_only)
        if not policy:
            return
        header, exempt, setting = (
            (HEADER_REPORT_ONLY, "_csp_exempt_ro", "CONTENT_SECURITY_POLICY_REPORT_ONLY")
            if report_only
            else (HEADER, "_csp_exempt", "CONTENT_SECURITY_POLICY")
        )
        prefixes = (getattr(settings, setting, None) or {}).get("EXCLUDE_URL_PREFIXES") or ()
        if (
            header not in response
            and getattr(response, exempt, False) is False
            and not request.path_info.startswith(tuple(prefixes))
        ):
            response[header] = policy

    def process_response(
        self, request: HttpRequest, response: HttpResponseBase
    ) -> HttpResponseBase:
        if response.status_code in _EXEMPTED_DEBUG_CODES and settings.DEBUG:
            return response
        self._set(request, response, report_only=False)
        self._set(request, response, report_only=True)
        # As in django-csp: a nonce drawn after the header is written would not be in it.
        if getattr(request, "_csp_nonce", None) is None:
            request.csp_nonce = CheckableLazyObject(self._csp_nonce_post_response)  # type: ignore[attr-defined]
        return response
