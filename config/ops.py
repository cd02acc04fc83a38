"""Operations endpoints: ``/health`` and ``/metrics``."""

import hmac
from typing import Any

import redis
from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.http import require_GET
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector

from common.logging import get_logger
from common.metrics import QUEUE_DEPTH
from pipeline.metrics import PipelineCollector

from .health import monitor, redis_client

log = get_logger(__name__)


@require_GET
def health(request: HttpRequest) -> JsonResponse:
    """200 when database, Redis, broker, workers and sandbox are fine; 503 naming what is not.

    Answers from this process's view of the checks, refreshed in the background every
    ``HEALTH_REFRESH_SECONDS``; a view past ``HEALTH_MAX_AGE_SECONDS``, or failing from before
    the request, is refreshed first (see ``config.health``).
    """
    snapshot = monitor.snapshot()
    failing = snapshot.failing
    body: dict[str, Any] = {"status": "ok" if not failing else "error", "checks": snapshot.checks}
    if failing:
        body["failing"] = failing
        body["detail"] = "Unhealthy: " + ", ".join(failing)
    return JsonResponse(body, status=503 if failing else 200)


def _queue_depths() -> dict[str, int]:
    """Messages waiting per queue; kombu's Redis transport keeps one list per priority."""
    client = redis_client(settings.CELERY_BROKER_URL)
    pipe = client.pipeline()
    for queue in settings.CELERY_TASK_QUEUES_NAMES:
        for name in (queue, *(f"{queue}\x06\x16{p}" for p in range(1, 10))):
            pipe.llen(name)
    lengths = pipe.execute()
    return {
        queue: sum(lengths[index * 10 : index * 10 + 10])
        for index, queue in enumerate(settings.CELERY_TASK_QUEUES_NAMES)
    }


def _refused(request: HttpRequest) -> JsonResponse | None:
    """Why this request may not read the metrics, or None when it may."""
    token = settings.METRICS_TOKEN
    if not token:
        if settings.METRICS_REQUIRE_TOKEN:
            return JsonResponse(
                {"detail": "Metrics are off: set METRICS_TOKEN.", "code": "metrics_disabled"},
                status=403,
            )
        return None
    presented = request.headers.get("Authorization", "")
    if hmac.compare_digest(presented.encode(), f"Bearer {token}".encode()):
        return None
    response = JsonResponse(
        {"detail": "Metrics token required.", "code": "not_authenticated"}, status=401
    )
    response["WWW-Authenticate"] = 'Bearer realm="metrics"'
    return response


@require_GET
def metrics(request: HttpRequest) -> HttpResponse:
    """Prometheus text: every process's counters (multiprocess mode), the queue depths, and
    the pipeline's figures from the database. Needs ``Authorization: Bearer METRICS_TOKEN``
    when a token is set, and a token in production."""
    refused = _refused(request)
    if refused is not None:
        return refused
    try:
        for queue, depth in _queue_depths().items():
            QUEUE_DEPTH.labels(queue).set(depth)
    except (redis.RedisError, OSError):
        log.warning("metrics.queue_depth_failed")
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
