"""Production settings, served for real: HTTPS only (redirect and HSTS), a forwarded scheme
trusted only behind a configured proxy, /metrics closed without its token, and the probes
(/health, /metrics) still answering over plain HTTP."""

import http.client
import json
from collections.abc import Iterator
from typing import Any

import pytest
from django.conf import settings

from tests.net import subprocess_env, web_server

pytestmark = [pytest.mark.slow, pytest.mark.django_db]

SECRETS_KEY = "5Y1vQ0b7m3uVZqZs3o6bE3c2JvJqk9eVt6V8zq0m1dA="


def _production(**extra: str) -> dict[str, str]:
    return subprocess_env(
        DJANGO_SETTINGS_MODULE="config.settings.production",
        DJANGO_SECRET_KEY="production-test-key-" + "x" * 40,
        DJANGO_CSRF_TRUSTED_ORIGINS="https://aiflow.example.com",
        REDIS_URL=settings.REDIS_URL,
        CELERY_BROKER_URL=settings.REDIS_URL,
        CELERY_RESULT_BACKEND=settings.REDIS_URL,
        SECRETS_ENCRYPTION_KEYS=SECRETS_KEY,
        **extra,
    )


def _get(url: str, path: str, **headers: str) -> tuple[int, dict[str, str], bytes]:
    host, port = url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=60)
    try:
        conn.request("GET", path, headers=headers)
        response = conn.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        conn.close()


@pytest.fixture(scope="module")
def direct() -> Iterator[str]:
    """Production settings with no proxy configured in front."""
    with web_server(env=_production()) as (url, _):
        yield url


@pytest.fixture(scope="module")
def proxied() -> Iterator[str]:
    """Production settings behind a TLS-terminating proxy, with a metrics token."""
    env = _production(DJANGO_BEHIND_TLS_PROXY="true", METRICS_TOKEN="metrics-t0ken")
    with web_server(env=env) as (url, _):
        yield url


def test_plain_http_is_redirected_to_https(direct: str) -> None:
    status, headers, _ = _get(direct, "/projects")

    assert (status, headers["location"]) == (301, f"https://{direct[7:]}/projects")


def test_a_forwarded_scheme_is_not_believed_without_a_configured_proxy(direct: str) -> None:
    status, headers, _ = _get(direct, "/projects", **{"X-Forwarded-Proto": "https"})

    assert status == 301
    assert "strict-transport-security" not in headers


@pytest.mark.parametrize("path", ["/health", "/metrics"])
def test_the_probes_answer_over_plain_http(direct: str, path: str) -> None:
    status, _, _ = _get(direct, path)

    assert status not in (301, 302)


def test_metrics_are_refused_in_production_without_a_token(direct: str) -> None:
    status, _, body = _get(direct, "/metrics")

    assert (status, json.loads(body)["code"]) == (403, "metrics_disabled")


def test_behind_the_proxy_https_requests_get_hsts_and_no_redirect(proxied: str) -> None:
    status, headers, _ = _get(proxied, "/projects", **{"X-Forwarded-Proto": "https"})

    assert status == 401  # served (the API wants a token), not redirected
    assert headers["strict-transport-security"] == "max-age=31536000; includeSubDomains"


def test_behind_the_proxy_plain_http_is_still_redirected(proxied: str) -> None:
    status, _, _ = _get(proxied, "/projects", **{"X-Forwarded-Proto": "http"})

    assert status == 301


@pytest.mark.parametrize(
    ("authorization", "expected"),
    [
        ({}, 401),
        ({"Authorization": "Bearer wrong"}, 401),
        ({"Authorization": "Bearer metrics-t0ken"}, 200),
    ],
)
def test_metrics_need_the_bearer_token_in_production(
    proxied: str, authorization: dict[str, Any], expected: int
) -> None:
    status, _, _ = _get(proxied, "/metrics", **authorization)

    assert status == expected


def test_production_refuses_to_start_without_secret_encryption_keys() -> None:
    import subprocess
    import sys

    env = _production()
    del env["SECRETS_ENCRYPTION_KEYS"]
    done = subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert done.returncode != 0
    assert "Set SECRETS_ENCRYPTION_KEYS (Fernet keys)" in done.stderr
