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


def test_metrics_counts_runs_steps_tokens_and_cost_from_the_database(client, project):
    from decimal import Decimal

    from pipeline.models import Run, Step

    run = Run.objects.create(project=project, prompt="p", status=Run.Status.COMPLETED)
    Step.objects.create(
        run=run,
        role="coder",
        key="k1",
        status=Step.Status.SUCCEEDED,
        provider="openrouter",
        model="m1",
        tokens_in=100,
        tokens_out=40,
        cost_usd=Decimal("0.25"),
    )
    text = client.get("/metrics").content.decode()
    assert _sample(text, "aiflow_runs", status="completed") == 1
    assert _sample(text, "aiflow_steps", role="coder", status="succeeded") == 1
    labels = dict(provider="openrouter", model="m1")
    assert _sample(text, "aiflow_step_tokens_total", direction="in", **labels) == 100
    assert _sample(text, "aiflow_step_tokens_total", direction="out", **labels) == 40
    assert _sample(text, "aiflow_step_cost_usd_total", **labels) == 0.25


def test_metrics_adds_up_counters_that_worker_processes_wrote(client, settings, tmp_path):
    import os
    import subprocess
    import sys

    worker_code = (
        "from providers.metrics import LLM_FAILOVERS, LLM_ERRORS\n"
        "LLM_FAILOVERS.labels('openrouter', 'm1', 'http_503').inc()\n"
        "LLM_ERRORS.labels('openrouter', 'm1', '503').inc(3)\n"
    )
    for _ in range(2):  # two "worker processes"
        subprocess.run(
            [sys.executable, "-c", worker_code],
            env={**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)},
            check=True,
        )
    settings.PROMETHEUS_MULTIPROC_DIR = str(tmp_path)
    text = client.get("/metrics").content.decode()
    assert _sample(text, "llm_failovers_total", provider="openrouter", reason="http_503") == 2
    assert _sample(text, "llm_errors_total", provider="openrouter", kind="503") == 6
