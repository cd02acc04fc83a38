"""Operations endpoints: ``/health`` and ``/metrics``."""

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any

import redis
from django.conf import settings
from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.http import require_GET
from kombu import Connection
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector

from common.logging import get_logger
from common.metrics import QUEUE_DEPTH
from pipeline.metrics import PipelineCollector

from .celery import app as celery_app

log = get_logger(__name__)
_pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="health")


def _check_database() -> str:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    finally:
        connection.close()
    return "ok"


def _redis_client(url: str) -> redis.Redis:
    timeout = settings.HEALTH_WORKER_PING_TIMEOUT + 1
    return redis.Redis.from_url(url, socket_connect_timeout=timeout, socket_timeout=timeout)


def _check_redis() -> str:
    _redis_client(settings.REDIS_URL).ping()
    return "ok"


def _broker_connection() -> Connection:
    return Connection(
        settings.CELERY_BROKER_URL,
        connect_timeout=2,
        transport_options={"socket_connect_timeout": 2, "socket_timeout": 3},
    )


def _check_broker() -> str:
    with _broker_connection() as conn:
        conn.ensure_connection(max_retries=1, interval_start=0, timeout=2)
        channel: Any = conn.default_channel
        channel.client.ping()
    return "ok"


def _check_workers() -> str:
    with _broker_connection() as conn:
        replies = celery_app.control.ping(
            timeout=settings.HEALTH_WORKER_PING_TIMEOUT, connection=conn
        )
    if not replies:
        raise RuntimeError("no worker answered a ping")
    return f"ok ({len(replies)})"


CHECKS: dict[str, Callable[[], str]] = {
    "database": _check_database,
    "redis": _check_redis,
    "broker": _check_broker,
    "workers": _check_workers,
}


def run_health_checks() -> dict[str, str]:
    """Run every check at once, each bounded in time; a value other than ``ok…`` failed."""
    futures = {name: _pool.submit(check) for name, check in CHECKS.items()}
    deadline = settings.HEALTH_WORKER_PING_TIMEOUT + 4
    results: dict[str, str] = {}
    for name, future in futures.items():
        try:
            results[name] = future.result(timeout=deadline)
        except FutureTimeout:
            results[name] = "error: timed out"
        except Exception as exc:  # noqa: BLE001 - any failure is a failed check, shown as such
            results[name] = f"error: {type(exc).__name__}: {str(exc)[:200]}"
    if not results["broker"].startswith("ok") and not results["workers"].startswith("ok"):
        results["workers"] = "error: broker unreachable"
    return results


@require_GET
def health(request: HttpRequest) -> JsonResponse:
    """200 when database, Redis, broker and a worker answer; 503 naming what failed."""
    checks = run_health_checks()
    failing = [name for name, value in checks.items() if not value.startswith("ok")]
    body: dict[str, Any] = {"status": "ok" if not failing else "error", "checks": checks}
    if failing:
        body["failing"] = failing
        body["detail"] = "Unhealthy: " + ", ".join(failing)
        log.warning("health.failed", failing=failing)
    return JsonResponse(body, status=503 if failing else 200)


def _queue_depths() -> dict[str, int]:
    """Messages waiting per queue; kombu's Redis transport keeps one list per priority."""
    client = _redis_client(settings.CELERY_BROKER_URL)
    depths = {}
    for queue in settings.CELERY_TASK_QUEUES_NAMES:
        names = [queue, *(f"{queue}\x06\x16{p}" for p in range(1, 10))]
        pipe = client.pipeline()
        for name in names:
            pipe.llen(name)
        depths[queue] = sum(pipe.execute())
    return depths


@require_GET
def metrics(request: HttpRequest) -> HttpResponse:
    """Prometheus text exposition of this process's metrics plus the queue depths."""
    token = settings.METRICS_TOKEN
    if token and request.headers.get("Authorization") != f"Bearer {token}":
        return JsonResponse(
            {"detail": "Metrics token required.", "code": "not_authenticated"}, status=401
        )
    try:
        for queue, depth in _queue_depths().items():
            QUEUE_DEPTH.labels(queue).set(depth)
    except redis.RedisError as exc:
        log.warning("metrics.queue_depth_failed", error=str(exc))
    if settings.PROMETHEUS_MULTIPROC_DIR:
        # Every process (web, workers) writes its counters to this directory.
        process_registry = CollectorRegistry()
        MultiProcessCollector(process_registry, path=settings.PROMETHEUS_MULTIPROC_DIR)
    else:
        process_registry = REGISTRY
    pipeline_registry = CollectorRegistry()
    pipeline_registry.register(PipelineCollector())
    body = generate_latest(process_registry) + generate_latest(pipeline_registry)
    return HttpResponse(body, content_type=CONTENT_TYPE_LATEST)
