"""Request id and Prometheus middleware (sync and async capable)."""

import re
import time
import uuid
from collections.abc import Callable
from typing import Any

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.http import HttpRequest, HttpResponse

from .logging import bind_request_id
from .metrics import HTTP_LATENCY, HTTP_REQUESTS

_VALID_ID = re.compile(r"^[A-Za-z0-9._-]{1,128}$")


class _Middleware:
    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Callable[[HttpRequest], Any]) -> None:
        self.get_response = get_response
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)

    def __call__(self, request: HttpRequest) -> Any:
        if self.is_async:
            return self._acall(request)
        self.before(request)
        response = self.get_response(request)
        return self.after(request, response)

    async def _acall(self, request: HttpRequest) -> HttpResponse:
        self.before(request)
        response = await self.get_response(request)
        return self.after(request, response)

    def before(self, request: HttpRequest) -> None:
        """Called before the view."""

    def after(self, request: HttpRequest, response: HttpResponse) -> HttpResponse:
        return response


class RequestIdMiddleware(_Middleware):
    """Takes a sane incoming ``X-Request-ID`` or makes one, binds it for logs, echoes it."""

    def before(self, request: HttpRequest) -> None:
        incoming = request.headers.get("X-Request-ID", "")
        request_id = incoming if _VALID_ID.match(incoming) else uuid.uuid4().hex
        request.request_id = request_id  # type: ignore[attr-defined]
        bind_request_id(request_id)

    def after(self, request: HttpRequest, response: HttpResponse) -> HttpResponse:
        response["X-Request-ID"] = request.request_id  # type: ignore[attr-defined]
        return response


class PrometheusMiddleware(_Middleware):
    """Counts requests and times them by method, route pattern and status."""

    def before(self, request: HttpRequest) -> None:
        request._metrics_started = time.perf_counter()  # type: ignore[attr-defined]

    def after(self, request: HttpRequest, response: HttpResponse) -> HttpResponse:
        match = getattr(request, "resolver_match", None)
        route = f"/{match.route}" if match is not None and match.route else "<unmatched>"
        labels = (request.method or "", route, str(response.status_code))
        HTTP_REQUESTS.labels(*labels).inc()
        started = getattr(request, "_metrics_started", None)
        if started is not None:
            HTTP_LATENCY.labels(*labels).observe(time.perf_counter() - started)
        return response
