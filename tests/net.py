"""Helpers for tests that start processes of their own: free ports, servers, environments."""

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on (right now)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_listening(port: int, process: subprocess.Popen | None = None, timeout: float = 30) -> None:
    """Wait until something accepts connections on ``port``; fail if ``process`` dies first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise AssertionError(f"the server exited with {process.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.1)
    raise AssertionError(f"nothing listens on port {port} after {timeout}s")


def subprocess_env(**extra: str) -> dict[str, str]:
    """Environment for a server or worker subprocess on this test run's database and Redis."""
    from django.conf import settings
    from django.db import connection

    db = connection.settings_dict
    return {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "DJANGO_SETTINGS_MODULE": "config.settings.test",
        "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        "TEST_REDIS_URL": settings.REDIS_URL,
        "MEDIA_ROOT": str(settings.MEDIA_ROOT),
        **extra,
    }


@contextmanager
def web_server(
    *, module: str = "config.serve", env: dict[str, str] | None = None, **popen: Any
) -> Iterator[tuple[str, subprocess.Popen]]:
    """``config.asgi`` served by ``module`` (our draining daphne, or daphne) on a free port."""
    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            module,
            "-b",
            "127.0.0.1",
            "-p",
            str(port),
            "config.asgi:application",
        ],
        cwd=ROOT,
        env=env or subprocess_env(),
        **{"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL, **popen},
    )
    try:
        wait_listening(port, process)
        yield f"http://127.0.0.1:{port}", process
    finally:
        if process.poll() is None:
            process.terminate()
        process.wait(timeout=15)
