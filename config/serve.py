"""The web tier: daphne with a graceful drain, in one or several processes on one port.

``python -m config.serve`` takes daphne's own arguments. With ``WEB_PROCESSES`` above 1 (0,
the default, means one per CPU) it becomes a small supervisor: it starts that many daphne
processes, each listening on the same host and port through its own ``SO_REUSEPORT``
socket (the kernel spreads new connections over them), restarts one that dies, and on
SIGTERM or SIGINT passes SIGTERM on and waits for every one of them to drain. Channels
keeps its layer in Redis, so a WebSocket group reaches clients of every process.

Each daphne process drains the same way: stock daphne cancels every in-flight request when
it receives SIGTERM or SIGINT; this server first stops listening (new connections are
refused), then gives running HTTP requests up to ``WEB_DRAIN_SECONDS`` to finish, and only
then cancels what is left (long-lived streams and sockets).
"""

from __future__ import annotations

import importlib
import os
import signal
import socket
import sys
import time
from typing import Any

from daphne.cli import CommandLineInterface
from daphne.server import Server
from twisted.internet import defer, reactor

from config.supervise import Supervisor

CHILD_FLAG = "--serve-child"


def _settings() -> Any:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")
    from django.conf import settings

    return settings


class DrainingServer(Server):
    """A daphne server that lets in-flight HTTP requests finish before shutting down."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.ports: list[Any] = []
        self.drain_seconds = float(_settings().WEB_DRAIN_SECONDS)

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


# --- Several processes ---------------------------------------------------------------------


def _address(argv: list[str]) -> tuple[str, int, list[str]]:
    """Host and port from daphne's ``-b``/``--bind`` and ``-p``/``--port``; the rest."""
    host, port, rest = "127.0.0.1", 8000, []
    items = iter(argv)
    for item in items:
        if item in ("-b", "--bind"):
            host = next(items)
        elif item in ("-p", "--port"):
            port = int(next(items))
        else:
            rest.append(item)
    return host, port, rest


def _reuseport_socket(host: str, port: int) -> int:
    """A listening socket on ``host:port`` that other processes may listen on too."""
    if ":" in host:
        raise SystemExit(f"several web processes need an IPv4 bind, not {host!r}; WEB_PROCESSES=1")
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.listen(1024)
    return sock.detach()


def _load_application(argv: list[str]) -> None:
    """Import the ASGI application daphne's arguments name; unmount the terminal workspaces
    a killed web process left mounted; freeze what was loaded (``common.memory``: short
    collector pauses for the process's life)."""
    from common.logging import get_logger
    from common.memory import freeze_startup_objects

    application = next((arg for arg in reversed(argv) if ":" in arg and "=" not in arg), "")
    if application:
        importlib.import_module(application.split(":", 1)[0])
        from projects.workspace import workspace_sweep_projects

        try:
            workspace_sweep_projects()
        except OSError:  # never a reason not to serve
            get_logger(__name__).exception("serve.workspace_sweep_failed")
    freeze_startup_objects()


def serve_child(argv: list[str]) -> None:
    """One daphne process of several: its own SO_REUSEPORT socket on the shared port
    (Twisted adopts a duplicate of it and closes the original).

    The application is loaded before the socket opens, so a process takes connections only
    once it can serve them; told to stop before then, it has nothing to drain and exits 0.
    """
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    host, port, rest = _address(argv)
    _load_application(rest)
    DrainingCommandLine().run(["--fd", str(_reuseport_socket(host, port)), *rest])


def main(argv: list[str]) -> int:
    if argv[:1] == [CHILD_FLAG]:
        serve_child(argv[1:])
        return 0
    count = int(_settings().WEB_PROCESSES) or (os.cpu_count() or 1)
    if count <= 1:
        _load_application(argv)
        DrainingCommandLine().run(argv)
        return 0
    return Supervisor(
        count,
        lambda _slot: [sys.executable, "-m", "config.serve", CHILD_FLAG, *argv],
        own_session=True,  # a terminal's Ctrl-C reaches us, and we pass it on
        grace=float(_settings().WEB_DRAIN_SECONDS) + 15,
    ).run()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
