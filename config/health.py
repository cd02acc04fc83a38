"""What ``/health`` reports: a view of the platform kept fresh in the background.

A request never runs a check itself. Each web process keeps the last result of every check
and refreshes it at most every ``HEALTH_REFRESH_SECONDS`` while it is being asked, in one
background thread: a request that finds a passing view older than that starts the refresh
and answers from the view it has. So while all is well /health costs the same at 1 request
a second or 1,000, and a slow dependency slows the refresh, never the answers.

Two things are never served from the view, since a monitor would be told something that
is no longer true (measured: after an idle spell the first answer was the view of the last
request, minutes old; a process answered 503 "no worker consumes the llm queue" from a view
made before its workers started, after they had reported in):

- a view older than ``HEALTH_MAX_AGE_SECONDS`` (after an idle spell): the request waits for
  a refresh;
- a failing view: the request waits for a refresh that started after it arrived, so a
  recovery shows at once and a failure is always current.

Waiting requests share one refresh at a time, and wait at most the checks' own bound
(``HEALTH_CHECK_TIMEOUT_SECONDS`` plus a second); a refresh that does not end by then gives
"timed out" for every check rather than an old view.

The workers are seen through their own heartbeats: every Celery worker writes, every
``HEALTH_HEARTBEAT_SECONDS``, its name, its queues and the time into one Redis hash
(``WorkerHeartbeat``, a worker bootstep); the check reads that hash, one round trip, never a
ping per request. A worker not heard from for ``HEALTH_WORKER_STALE_SECONDS`` counts as gone.

Every failing check says why in plain words from a fixed list (``unreachable``, ``timed
out``...): never an exception's text, which could carry a host name, a URL or a credential.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import redis
from celery import bootsteps
from django.conf import settings
from django.db import DatabaseError, connection

from common.logging import get_logger

log = get_logger(__name__)

WORKERS_KEY = "aiflow:health:workers"
CHECKS = ("database", "redis", "broker", "workers", "sandbox")


class CheckFailed(Exception):
    """A check failed for ``reason``: plain words of our own, safe to show anyone."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


# --- Redis clients (one pool per URL and process) --------------------------------------------

_clients: dict[str, redis.Redis] = {}
_clients_lock = threading.Lock()


def redis_client(url: str) -> Any:  # redis.Redis; its sync/async union types only add noise
    """A client for ``url`` with /health's timeouts (one connection pool per URL and process)."""
    client = _clients.get(url)
    if client is None:
        with _clients_lock:
            client = _clients.get(url)
            if client is None:
                timeout = settings.HEALTH_CHECK_TIMEOUT_SECONDS
                client = redis.Redis.from_url(
                    url, socket_connect_timeout=timeout, socket_timeout=timeout
                )
                _clients[url] = client
    return client


def _redis_reason(exc: Exception) -> str:
    if isinstance(exc, redis.TimeoutError | socket.timeout | TimeoutError):
        return "timed out"
    if isinstance(exc, redis.AuthenticationError | redis.AuthenticationWrongNumberOfArgsError):
        return "refused the credentials"
    if isinstance(exc, redis.ConnectionError | OSError):
        return "unreachable"
    return "failed"


# --- The checks ------------------------------------------------------------------------------


def check_database() -> str:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except DatabaseError as exc:
        raise CheckFailed("unreachable") from exc
    finally:
        connection.close()  # this thread's connection goes back to the pool
    return "ok"


def _ping(url: str) -> str:
    try:
        redis_client(url).ping()
    except (redis.RedisError, OSError) as exc:
        raise CheckFailed(_redis_reason(exc)) from exc
    return "ok"


def check_redis() -> str:
    return _ping(settings.REDIS_URL)


def check_broker() -> str:
    url = settings.CELERY_BROKER_URL
    if url.startswith(("redis://", "rediss://", "unix://")):
        return _ping(url)
    from kombu import Connection

    try:
        with Connection(url, connect_timeout=settings.HEALTH_CHECK_TIMEOUT_SECONDS) as conn:
            conn.ensure_connection(max_retries=1, interval_start=0)
    except Exception as exc:
        raise CheckFailed("unreachable") from exc
    return "ok"


def live_workers() -> list[dict[str, Any]]:
    """The workers heard from within ``HEALTH_WORKER_STALE_SECONDS``."""
    client = redis_client(settings.REDIS_URL)
    try:
        raw = client.hgetall(WORKERS_KEY)
    except (redis.RedisError, OSError) as exc:
        raise CheckFailed(f"heartbeats unreadable: Redis {_redis_reason(exc)}") from exc
    oldest = time.time() - settings.HEALTH_WORKER_STALE_SECONDS
    live, gone = [], []
    for name, value in raw.items():
        try:
            beat = json.loads(value)
            fresh = float(beat["at"]) >= oldest
        except (ValueError, TypeError, KeyError):
            fresh = False
        if fresh:
            live.append(beat)
        else:
            gone.append(name)
    if gone:  # workers that stopped without a word (killed): forget them
        client.hdel(WORKERS_KEY, *gone)
    return live


def check_workers() -> str:
    live = live_workers()
    if not live:
        raise CheckFailed(
            f"no worker reported in the last {settings.HEALTH_WORKER_STALE_SECONDS:g}s"
        )
    served = {queue for beat in live for queue in beat.get("queues", ())}
    missing = [q for q in settings.CELERY_TASK_QUEUES_NAMES if q not in served]
    if missing:
        raise CheckFailed("no worker consumes the " + ", ".join(missing) + " queue")
    return f"ok ({len(live)} worker{'s' if len(live) != 1 else ''})"


def sandbox_status() -> str:
    """Whether generated code can run confined on this host: ``ok`` or ``CheckFailed``.

    ``projects.sandbox.sandbox_status`` checks what a run needs (bubblewrap, the sandbox
    environment, the seccomp filter, one real confined start) and keeps its answer for
    ``SANDBOX_STATUS_CACHE_SECONDS``; the answer here names the problem in plain words only.
    """
    from projects.sandbox import sandbox_status as sandbox_probe

    status = sandbox_probe()
    if not status.ok:
        log.warning("health.sandbox_failing", reason=status.reason)
        raise CheckFailed(status.problem or "the sandbox is not usable")
    if status.reason != "bubblewrap":
        return "ok (unsafe-local: not confined)"
    return "ok"


def _checks() -> dict[str, Callable[[], str]]:
    return {
        "database": check_database,
        "redis": check_redis,
        "broker": check_broker,
        "workers": check_workers,
        "sandbox": sandbox_status,
    }


# --- The view each process keeps --------------------------------------------------------------


@dataclass
class Snapshot:
    """The result of every check, and when they started (``time.monotonic()``)."""

    checks: dict[str, str]
    at: float = field(default_factory=time.monotonic)

    @property
    def failing(self) -> list[str]:
        return [name for name, value in self.checks.items() if not value.startswith("ok")]


class HealthMonitor:
    """One process's view of the platform, refreshed in the background while asked for."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._snapshot: Snapshot | None = None
        self._refreshing: threading.Event | None = None

    @staticmethod
    def _run(name: str, check: Callable[[], str], results: dict[str, str]) -> None:
        try:
            results[name] = check()
        except CheckFailed as exc:
            results[name] = f"error: {exc.reason}"
        except Exception:  # a bug in a check: say it failed, log the details
            log.exception("health.check_crashed", check=name)
            results[name] = "error: failed"

    def run_checks(self) -> Snapshot:
        """Run every check at once, each bounded in time.

        Each runs in a daemon thread of its own: one that hangs past the deadline counts as
        timed out and never holds up the next refresh or the process's exit.
        """
        started = time.monotonic()
        results: dict[str, str] = {}
        threads = [
            threading.Thread(
                target=self._run, args=(name, check, results), name=f"health-{name}", daemon=True
            )
            for name, check in _checks().items()
        ]
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + settings.HEALTH_CHECK_TIMEOUT_SECONDS + 1
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        results = {name: results.get(name, "error: timed out") for name in _checks()}
        if results["broker"] != "ok" and results["workers"].startswith("ok"):
            results["workers"] = "error: broker unreachable"
        return Snapshot(results, at=started)

    def refresh(self, wait: float | None = None) -> Snapshot | None:
        """Take a new snapshot now, or wait (at most ``wait`` seconds) for the one under way.

        One refresh at a time: a caller that finds one running waits for it and gets the view
        it made (``None`` if it did not end in time).
        """
        with self._lock:
            running = self._refreshing
            if running is None:
                running = self._refreshing = threading.Event()
                owner = True
            else:
                owner = False
        if not owner:
            bound = settings.HEALTH_CHECK_TIMEOUT_SECONDS + 5 if wait is None else wait
            running.wait(max(0.0, bound))
            return self._snapshot
        try:
            snapshot = self.run_checks()
            if snapshot.failing:
                log.warning("health.failed", failing=snapshot.failing, checks=snapshot.checks)
            current = self._snapshot
            if current is None or current.at <= snapshot.at:
                self._snapshot = snapshot
            return snapshot
        finally:
            with self._lock:
                self._refreshing = None
            running.set()

    def _view_since(self, since: float) -> Snapshot:
        """A view whose checks started at ``since`` or later, waiting for refreshes if need be.

        The wait is bounded by the checks' own bound; past it every check says "timed out".
        """
        deadline = time.monotonic() + settings.HEALTH_CHECK_TIMEOUT_SECONDS + 1
        while True:
            current = self._snapshot
            if current is not None and current.at >= since:
                return current
            left = deadline - time.monotonic()
            if left <= 0:
                log.warning("health.refresh_late")
                return Snapshot({name: "error: timed out" for name in _checks()})
            self.refresh(wait=left)

    def snapshot(self) -> Snapshot:
        """The view to answer from: never older than ``HEALTH_MAX_AGE_SECONDS``, never failing
        from before this request; a passing view past ``HEALTH_REFRESH_SECONDS`` is answered
        from while a background refresh runs."""
        arrived = time.monotonic()
        current = self._snapshot
        if current is None or current.failing:
            return self._view_since(arrived)
        age = arrived - current.at
        if age >= settings.HEALTH_MAX_AGE_SECONDS:
            return self._view_since(arrived - settings.HEALTH_MAX_AGE_SECONDS)
        if age >= settings.HEALTH_REFRESH_SECONDS:
            with self._lock:
                idle = self._refreshing is None
            if idle:
                threading.Thread(target=self.refresh, name="health-refresh", daemon=True).start()
        return current

    def forget(self) -> None:
        """Drop the view (tests that change what the checks look at)."""
        from projects.sandbox import sandbox_status_forget

        self._snapshot = None
        sandbox_status_forget()


monitor = HealthMonitor()


# --- The workers' side: a heartbeat in every Celery worker -------------------------------------


class WorkerHeartbeat(bootsteps.StartStopStep):
    """Writes this worker's name, queues and the time to Redis every few seconds."""

    def __init__(self, worker: Any, **kwargs: Any) -> None:
        super().__init__(worker, **kwargs)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._name = ""

    def start(self, worker: Any) -> None:
        self._name = str(getattr(worker, "hostname", None) or f"{socket.gethostname()}")
        consume = getattr(worker.app.amqp.queues, "consume_from", None) or {}
        queues = sorted(consume) or list(settings.CELERY_TASK_QUEUES_NAMES)
        body = {
            "name": self._name,
            "queues": queues,
            "pid": os.getpid(),
            "concurrency": getattr(worker, "concurrency", None),
        }
        self._stop.clear()

        def beat() -> None:
            while True:
                try:
                    client = redis_client(settings.REDIS_URL)
                    client.hset(WORKERS_KEY, self._name, json.dumps({**body, "at": time.time()}))
                    client.expire(WORKERS_KEY, int(settings.HEALTH_WORKER_STALE_SECONDS * 6))
                except (redis.RedisError, OSError):
                    log.warning("health.heartbeat_failed", worker=self._name)
                if self._stop.wait(settings.HEALTH_HEARTBEAT_SECONDS):
                    return

        self._thread = threading.Thread(target=beat, name="health-heartbeat", daemon=True)
        self._thread.start()

    def stop(self, worker: Any) -> None:
        """A worker that stops taking tasks says so at once."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        try:
            redis_client(settings.REDIS_URL).hdel(WORKERS_KEY, self._name)
        except (redis.RedisError, OSError):
            log.warning("health.heartbeat_failed", worker=self._name)

    def terminate(self, parent: Any) -> None:
        self.stop(parent)

    def shutdown(self, parent: Any) -> None:
        self.stop(parent)
