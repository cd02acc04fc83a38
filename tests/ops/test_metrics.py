"""/metrics exposes request counts, latency histograms, queue depths and what the web and
worker processes counted; it needs its token when one is set, and one in production."""

import re

import pytest
import redis
from django.conf import settings as django_settings

from tests.providers.conftest import llm_settings, stub_server

__all__ = ["llm_settings", "stub_server"]  # the providers tests' stub vendors, used here

pytestmark = pytest.mark.django_db


def _find(text: str, name: str, labels: dict[str, str]) -> float | None:
    for line in text.splitlines():
        if not line.startswith(name + "{"):
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', line.split("}")[0]))
        if all(found.get(k) == v for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return None


def _sample(text: str, name: str, **labels: str) -> float:
    """The value of the series ``name{labels}``; a missing series fails the test."""
    value = _find(text, name, labels)
    if value is None:
        raise AssertionError(f"no series {name}{labels} in /metrics")
    return value


def test_metrics_counts_a_request_by_route_and_status(client, api_client):
    route = dict(method="GET", route="/projects", status="200")
    before = _find(client.get("/metrics").content.decode(), "http_requests_total", route) or 0
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

    refused = client.get("/metrics", HTTP_AUTHORIZATION="Bearer s3cret-metric")
    authorized = client.get("/metrics", HTTP_AUTHORIZATION="Bearer s3cret-metrics")

    assert (refused.status_code, refused["WWW-Authenticate"]) == (401, 'Bearer realm="metrics"')
    assert authorized.status_code == 200
    assert "http_requests_total" in authorized.content.decode()


def test_metrics_are_refused_without_a_token_where_one_is_required(client, settings):
    settings.METRICS_TOKEN = ""
    settings.METRICS_REQUIRE_TOKEN = True  # production

    response = client.get("/metrics")

    assert response.status_code == 403
    assert response.json()["code"] == "metrics_disabled"


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


def test_a_failover_moves_the_failover_and_error_counters_by_exactly_one(
    client, llm_settings, stub_server
):
    from providers.services import complete
    from tests.providers.stubs import openai_error, openai_reply

    primary = stub_server(lambda _: openai_error(401))
    secondary = stub_server(lambda _: openai_reply("from secondary"))
    llm_settings.LLM_PROVIDERS = {
        "primary": {"kind": "openai", "base_url": primary.url + "/v1", "api_key": "k1"},
        "secondary": {"kind": "openai", "base_url": secondary.url + "/v1", "api_key": "k2"},
    }
    llm_settings.LLM_CHAINS = {"default": ["primary:metrics-a", "secondary:metrics-b"]}
    left = {"provider": "primary", "model": "metrics-a"}
    series = [
        ("llm_failovers_total", {**left, "reason": "http_401"}),
        ("llm_errors_total", {**left, "kind": "401"}),
        ("llm_calls_total", {**left, "outcome": "error"}),
        ("llm_calls_total", {"provider": "secondary", "model": "metrics-b", "outcome": "ok"}),
        ("llm_errors_total", {"provider": "secondary", "model": "metrics-b", "kind": "401"}),
    ]
    text = client.get("/metrics").content.decode()
    before = [_find(text, name, labels) or 0 for name, labels in series]

    completion = complete(role="coder", messages=[{"role": "user", "content": "Plan it."}])

    text = client.get("/metrics").content.decode()
    after = [_find(text, name, labels) or 0 for name, labels in series]
    assert (completion.provider, len(primary.requests)) == ("secondary", 1)
    assert [a - b for a, b in zip(after, before, strict=True)] == [1, 1, 1, 1, 0]


@pytest.mark.slow
def test_metrics_add_up_what_the_real_web_and_worker_processes_counted(
    transactional_db, user, project, tmp_path
):
    """`make up`'s multiprocess mode: a web process and a worker process each write their
    counters to PROMETHEUS_MULTIPROC_DIR; /metrics (served by the web process) adds them up,
    and they match what the database says the run did."""
    import json
    import urllib.request

    from django.db.models import Sum

    from pipeline.models import Run, Step
    from tests.conftest import access_token_for
    from tests.net import subprocess_env, web_server, worker_process
    from tests.pipeline.conftest import wait_for_run

    env = subprocess_env(
        PROMETHEUS_MULTIPROC_DIR=str(tmp_path / "prometheus"),
        METRICS_TOKEN="metrics-t0ken",
        SANDBOX_TESTS_ENABLED="false",
    )
    token = access_token_for(user)

    def call(url: str, method: str = "GET", body: dict | None = None, bearer: str = token):
        request = urllib.request.Request(
            url,
            method=method,
            data=json.dumps(body).encode() if body is not None else None,
            headers={"Authorization": f"Bearer {bearer}", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, response.read().decode()

    with worker_process(env=env, log=tmp_path / "worker.log"), web_server(env=env) as (url, _):
        status, answer = call(
            f"{url}/projects/{project.id}/generate", "POST", {"prompt": "A timer"}
        )
        run = wait_for_run(json.loads(answer)["run_id"], timeout=240)
        _, text = call(f"{url}/metrics", bearer="metrics-t0ken")

    assert (status, run.status) == (202, Run.Status.COMPLETED)
    steps = Step.objects.filter(run=run).aggregate(
        calls=Sum("llm_calls"), tokens_in=Sum("tokens_in"), tokens_out=Sum("tokens_out")
    )
    model = {"provider": "offline", "model": "offline"}
    # Written by the worker process:
    assert _sample(text, "llm_calls_total", outcome="ok", **model) == steps["calls"]
    assert _sample(text, "llm_tokens_total", direction="in", **model) == steps["tokens_in"]
    assert _sample(text, "llm_tokens_total", direction="out", **model) == steps["tokens_out"]
    # Written by the web process:
    generate = {"method": "POST", "route": "/projects/<int:project_id>/generate"}
    assert _sample(text, "http_requests_total", status="202", **generate) == 1
    assert _sample(text, "http_request_duration_seconds_count", status="202", **generate) == 1
