"""Prometheus metrics shared by the web process, kept in one registry per process.

With ``PROMETHEUS_MULTIPROC_DIR`` set (``make up`` sets it), every process writes its
counters to that directory and ``/metrics`` serves their sum; pipeline figures come from
the database (``pipeline.metrics``).
"""

from prometheus_client import Counter, Gauge, Histogram

HTTP_REQUESTS = Counter(
    "http_requests_total", "HTTP requests served", ["method", "route", "status"]
)
HTTP_LATENCY = Histogram(
    "http_request_duration_seconds",
    "HTTP request latency",
    ["method", "route", "status"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
QUEUE_DEPTH = Gauge(
    "celery_queue_depth",
    "Messages waiting in a Celery queue",
    ["queue"],
    multiprocess_mode="mostrecent",
)
