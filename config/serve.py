"""The web tier: daphne with a graceful drain, in one or several processes on one port.

``python -m config.serve`` takes daphne's own arguments. It loads the application first
(Django, every app, the URLs), unmounts the terminal workspaces a killed web process left
mounted, and freezes what it loaded (``common.memory``). With ``WEB_PROCESSES`` above 1 (0,
the default, means one per CPU) it then becomes a small supervisor (``config.supervise``):
it forks that many daphne processes, which start with the application already in memory
(shared with the supervisor copy-on-write), each listening on the same host and port
through its own ``SO_REUSEPORT`` socket (the kernel spreads new connections over them),
restarts one that dies, and on SIGTERM or SIGINT passes SIGTERM on and waits for every one
of them to drain (``config.daphne_server``). Channels keeps its layer in Redis, so a
WebSocket group reaches clients of every process. daphne itself (and its event loop) is
imported only in the processes that serve, after the fork.
"""

from __future__ import annotations

import importlib
import os
import socket
import sys
from typing import Any

from config.supervise import Supervisor

# daphne's and Twisted's modules that do not install a reactor: imported before the fork, they
# are shared; ``config.daphne_server`` (which installs the reactor) is imported after it.
_SERVER_MODULES = (
    "autobahn.twisted.websocket",
    "daphne.access",
    "daphne.http_protocol",
    "daphne.ws_protocol",
    "twisted.internet.asyncioreactor",
    "twisted.internet.endpoints",
    "twisted.internet.tcp",
    "twisted.logger",
    "twisted.web.http",
)


def _settings() -> Any:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")
    from django.conf import settings

    return settings


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
    for module in _SERVER_MODULES:
        importlib.import_module(module)
    if application:
        importlib.import_module(application.split(":", 1)[0])
        from projects.workspace import workspace_sweep_projects

        try:
            workspace_sweep_projects()
        except OSError:  # never a reason not to serve
            get_logger(__name__).exception("serve.workspace_sweep_failed")
    freeze_startup_objects()


def serve_child(argv: list[str]) -> int:
    """One daphne process of several, forked from the supervisor with the application
    loaded: its own SO_REUSEPORT socket on the shared port (Twisted adopts a duplicate of it
    and closes the original)."""
    from config.daphne_server import DrainingCommandLine

    host, port, rest = _address(argv)
    DrainingCommandLine().run(["--fd", str(_reuseport_socket(host, port)), *rest])
    return 0


def main(argv: list[str]) -> int:
    count = int(_settings().WEB_PROCESSES) or (os.cpu_count() or 1)
    _load_application(argv)
    if count <= 1:
        from config.daphne_server import DrainingCommandLine

        DrainingCommandLine().run(argv)
        return 0
    return Supervisor(
        count,
        lambda _slot: serve_child(argv),
        own_session=True,  # a terminal's Ctrl-C reaches us, and we pass it on
        grace=float(_settings().WEB_DRAIN_SECONDS) + 15,
    ).run()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
