"""ASGI entry point: HTTP to Django, WebSocket to the Channels consumers of each app."""

import os

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")
django.setup(set_prefix=False)

from .http import OneTripASGIHandler  # noqa: E402

django_asgi_app = OneTripASGIHandler()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402

import pipeline.routing  # noqa: E402
import terminal.routing  # noqa: E402
from accounts.cookie_sessions import LiveCookieAuthMiddlewareStack  # noqa: E402
from common.websocket import OriginCheckMiddleware  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
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
