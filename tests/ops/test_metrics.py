"""/metrics exposes request counts, latency histograms and queue depths."""

import re

import pytest
import redis
from django.conf import settings as django_settings

pytestmark = pytest.mark.django_db


def _sample(text: str, name: str, **labels: str) -> float:
    for line in text.splitlines():
        if not line.startswith(name + "{"):
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', line.split("}")[0]))
        if all(found.get(k) == v for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_metrics_counts_a_request_by_route_and_status(client, api_client):
    route = dict(method="GET", route="/projects", status="200")
    before = _sample(client.get("/metrics").content.decode(), "http_requests_total", **route)
    api_client.get("/projects")
    text = client.get("/metrics").content.decode()
    assert _sample(text, "http_requests_total", **route) == before + 1
    assert _sample(text, "http_request_duration_seconds_count", **route) >= 1


def test_metrics_shows_queue_depth_per_queue(client):
    broker = redis.Redis.from_url(django_settings.CELERY_BROKER_URL)
    broker.lpush("sandbox", b"{}", b"{}")
    text = client.get("/metrics").content.decode()
    assert _sample(text, "celery_queue_depth", queue="sandbox") == 2
    assert _sample(text, "celery_queue_depth", queue="llm") == 0


def test_metrics_requires_the_token_when_one_is_set(client, settings):
    settings.METRICS_TOKEN = "s3cret-metrics"
    assert client.get("/metrics").status_code == 401
    authorized = client.get("/metrics", HTTP_AUTHORIZATION="Bearer s3cret-metrics")
    assert authorized.status_code == 200
