"""Helpers for tests that start processes of their own: free ports, servers, environments."""

import os
import socket
import subprocess
import sys
import time
import urllib.parse
from collections.abc import Iterator, Mapping
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


def database_url(db: Mapping[str, Any]) -> str:
    """``DATABASE_URL`` for Django's ``settings_dict`` ``db``: user, password, host, port,
    name and libpq options, each quoted, so a subprocess reaches the same database however
    PostgreSQL authenticates (a password, special characters, a Unix socket)."""

    def quote(value: Any) -> str:
        return urllib.parse.quote(str(value or ""), safe="")

    user = quote(db.get("USER"))
    if db.get("PASSWORD"):
        user = f"{user}:{quote(db['PASSWORD'])}"
    host = str(db.get("HOST") or "")
    options = {
        key: str(value)
        for key, value in (db.get("OPTIONS") or {}).items()
        if isinstance(value, str | int) and not isinstance(value, bool)
    }
    if host.startswith("/"):  # a Unix socket directory goes in the query string
        options["host"] = host
        host = ""
    port = f":{db['PORT']}" if db.get("PORT") and host else ""
    query = f"?{urllib.parse.urlencode(options)}" if options else ""
    return f"postgres://{user}@{host}{port}/{quote(db.get('NAME'))}{query}"


def subprocess_env(**extra: str) -> dict[str, str]:
    """Environment for a server or worker subprocess on this test run's database and Redis."""
    from django.conf import settings
    from django.db import connection

    return {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "DJANGO_SETTINGS_MODULE": "config.settings.test",
        "DATABASE_URL": database_url(connection.settings_dict),
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


def child_pids(pid: int) -> set[int]:
    """The processes whose parent is ``pid``."""
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(stat[1]) == pid:
                found.add(int(entry.name))
    return found


def worker_started(name: str, process: subprocess.Popen | None = None, timeout: float = 60) -> None:
    """Wait until the worker named ``name@…`` reports in (its /health heartbeat)."""
    import json

    import redis
    from django.conf import settings

    from config.health import WORKERS_KEY

    store = redis.Redis.from_url(settings.REDIS_URL)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise AssertionError(f"worker {name} exited with {process.returncode}")
        beats = [json.loads(v) for v in store.hvals(WORKERS_KEY)]
        if any(beat.get("name", "").startswith(f"{name}@") for beat in beats):
            return
        time.sleep(0.2)
    raise AssertionError(f"worker {name} did not report in {timeout}s")


@contextmanager
def worker_process(
    *,
    name: str = "worker",
    queues: str = "llm,sandbox,default",
    pool: str = "threads",
    concurrency: int = 4,
    env: dict[str, str] | None = None,
    log: Path | None = None,
) -> Iterator[subprocess.Popen]:
    """A ``celery -A config worker`` process on this test run's database and Redis, ready
    (reported in) when the block starts; asked to stop (SIGTERM) when it ends, if alive."""
    out = log.open("wb") if log is not None else subprocess.DEVNULL
    process = subprocess.Popen(
        [
            str(Path(sys.executable).with_name("celery")),
            *("-A", "config", "worker", "-Q", queues, "--pool", pool, "-c", str(concurrency)),
            *("-n", f"{name}@%h", "--without-mingle", "--without-gossip", "--loglevel", "INFO"),
        ],
        cwd=ROOT,
        env=env or subprocess_env(),
        stdout=out,
        stderr=subprocess.STDOUT,
    )
    try:
        worker_started(name, process)
        yield process
    finally:
        if process.poll() is None:
            process.terminate()
        process.wait(timeout=60)
