"""ASGI entry point: HTTP to Django, WebSocket to the Channels consumers of each app."""

import os

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")
django.setup(set_prefix=False)

from django.conf import settings  # noqa: E402

if settings.BENCH_COUNT_STATEMENTS:  # make bench only: statements per run
    from common.statements import statements_install

    statements_install()

from .http import OneTripASGIHandler  # noqa: E402

django_asgi_app = OneTripASGIHandler()

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402

import pipeline.routing  # noqa: E402
import terminal.routing  # noqa: E402
from common.websocket import OriginCheckMiddleware  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        # Every WebSocket handshake from a foreign Origin is refused here (4403), before any
        # route; each consumer checks it again and admits only a single-use ticket.
        "websocket": OriginCheckMiddleware(
            AuthMiddlewareStack(
                URLRouter(
                    pipeline.routing.websocket_urlpatterns + terminal.routing.websocket_urlpatterns
                )
            )
        ),
    }
)
