"""ASGI entry point: HTTP to Django, WebSocket to the Channels consumers of each app."""

import os
from typing import Any

import django
from asgiref.sync import markcoroutinefunction

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")
django.setup(set_prefix=False)

from django.conf import settings  # noqa: E402

if settings.BENCH_COUNT_STATEMENTS:  # make bench only: statements per run
    from common.statements import statements_install

    statements_install()

from .http import OneTripASGIHandler  # noqa: E402

django_asgi_app = OneTripASGIHandler()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402

import pipeline.routing  # noqa: E402
import terminal.routing  # noqa: E402
from accounts.cookie_sessions import LiveCookieAuthMiddlewareStack  # noqa: E402
from common.websocket import OriginCheckMiddleware  # noqa: E402

websockets = ProtocolTypeRouter(
    {
        # Every WebSocket handshake from a foreign Origin is refused here (4403), before any
        # route; each consumer checks it again and admits only a single-use ticket. A cookie
        # counts (scope["user"]) only while its device session is live.
        "websocket": OriginCheckMiddleware(
            LiveCookieAuthMiddlewareStack(
                URLRouter(
                    pipeline.routing.websocket_urlpatterns + terminal.routing.websocket_urlpatterns
                )
            )
        ),
    }
)


def application(scope: dict, receive: Any, send: Any) -> Any:
    """HTTP to Django, anything else to the WebSocket routes.

    A plain function that returns the handler's coroutine: an HTTP request runs one
    coroutine frame fewer than through ``ProtocolTypeRouter`` (every resumption of a
    request, from each await, goes through each frame of the chain).
    """
    if scope["type"] == "http":
        return django_asgi_app(scope, receive, send)
    return websockets(scope, receive, send)


# ASGI 3 (one call), not 2, for servers that ask (asgiref's check, uvicorn's).
application._asgi_single_callable = True  # type: ignore[attr-defined]
markcoroutinefunction(application)
