"""daphne with a graceful drain (``config.serve`` runs it).

Importing this module imports daphne, which installs Twisted's asyncio reactor in this
process: ``config.serve`` imports it only in the process that serves, after forking, so
that no two processes share one event loop.

Stock daphne cancels every in-flight request when it receives SIGTERM or SIGINT; this
server first stops listening (new connections are refused), then gives running HTTP
requests up to ``WEB_DRAIN_SECONDS`` to finish, and only then cancels what is left
(long-lived streams and sockets).
"""

from __future__ import annotations

import time
from typing import Any

from daphne.cli import CommandLineInterface
from daphne.server import Server
from django.conf import settings
from twisted.internet import defer, reactor


class DrainingServer(Server):
    """A daphne server that lets in-flight HTTP requests finish before shutting down."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.ports: list[Any] = []
        self.drain_seconds = float(settings.WEB_DRAIN_SECONDS)

    def listen_success(self, port: Any) -> None:
        # Keep the listening ports (daphne's listener deferreds end in None, not the port).
        self.ports.append(port)
        super().listen_success(port)

    def _in_flight_http(self) -> int:
        return sum(
            1
            for protocol, details in self.connections.items()
            if type(protocol).__name__ == "WebRequest"
            and details.get("application_instance") is not None
            and not details["application_instance"].done()
        )

    def kill_all_applications(self) -> Any:
        for port in self.ports:
            port.stopListening()  # new connections are refused from now on
        finished: defer.Deferred = defer.Deferred()
        deadline = time.monotonic() + self.drain_seconds

        def poll() -> None:
            if self._in_flight_http() and time.monotonic() < deadline:
                reactor.callLater(0.05, poll)  # type: ignore[attr-defined,arg-type]
                return
            result = Server.kill_all_applications(self)
            result.chainDeferred(finished)

        poll()
        return finished


class DrainingCommandLine(CommandLineInterface):
    server_class = DrainingServer
