"""Views for tests/ops/test_http.py: what a request sees inside the one-trip handler."""

import asyncio
import contextvars
import threading

from asgiref.sync import async_to_sync
from django.http import HttpRequest, JsonResponse
from django.urls import path

MARK: contextvars.ContextVar[str] = contextvars.ContextVar("http_test_mark", default="unset")


async def _loop_id() -> int:
    return id(asyncio.get_running_loop())


def loop_view(request: HttpRequest) -> JsonResponse:
    return JsonResponse(
        {"loop": async_to_sync(_loop_id)(), "thread": threading.current_thread().name}
    )


def mark_view(request: HttpRequest) -> JsonResponse:
    seen = MARK.get()
    MARK.set(request.GET.get("set", ""))
    return JsonResponse({"seen": seen})


urlpatterns = [path("loop", loop_view), path("mark", mark_view)]
