"""Production settings refuse the public development values: ``manage.py check --deploy``
(any command, any process) stops with a message naming the variable to set."""

import os
import secrets
import subprocess
import sys

import pytest

from config.settings.base import DEVELOPMENT_ORIGINS, DEVELOPMENT_SECRET_KEY
from tests.net import ROOT

OWN_KEY = secrets.token_urlsafe(50)
OWN_ORIGIN = "https://aiflow.example.com"
# Production also needs the keys of the secrets at rest; present here, so each test meets only
# the refusal it is about.
SECRETS_KEYS = "cHJvZHVjdGlvbi10ZXN0LWtleS0zMi1ieXRlcy0hISE="


def check_deploy(**env: str) -> subprocess.CompletedProcess[str]:
    """``manage.py check --deploy`` under the production settings and ``env`` alone."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("DJANGO_")}
    base["SECRETS_ENCRYPTION_KEYS"] = SECRETS_KEYS
    return subprocess.run(  # noqa: S603 - our own interpreter and manage.py
        [sys.executable, "manage.py", "check", "--deploy"],
        env={**base, "DJANGO_SETTINGS_MODULE": "config.settings.production", **env},
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


def test_check_deploy_passes_with_a_key_and_an_origin_of_the_sites_own() -> None:
    result = check_deploy(DJANGO_SECRET_KEY=OWN_KEY, DJANGO_CSRF_TRUSTED_ORIGINS=OWN_ORIGIN)

    assert result.returncode == 0, result.stderr
    assert "ImproperlyConfigured" not in result.stderr


def test_check_deploy_with_the_development_secret_key_fails_naming_the_variable() -> None:
    result = check_deploy(
        DJANGO_SECRET_KEY=DEVELOPMENT_SECRET_KEY, DJANGO_CSRF_TRUSTED_ORIGINS=OWN_ORIGIN
    )

    assert result.returncode == 1
    assert (
        "ImproperlyConfigured: DJANGO_SECRET_KEY is the development key, which is public"
        in result.stderr
    )


def test_production_refuses_to_start_without_trusted_origins() -> None:
    result = check_deploy(DJANGO_SECRET_KEY=OWN_KEY)

    assert result.returncode == 1
    assert (
        "ImproperlyConfigured: Set the DJANGO_CSRF_TRUSTED_ORIGINS environment variable"
        in result.stderr
    )


@pytest.mark.parametrize(
    "origins",
    [
        ",".join(DEVELOPMENT_ORIGINS),
        DEVELOPMENT_ORIGINS[0],
        f"{OWN_ORIGIN},{DEVELOPMENT_ORIGINS[1]}",
        "http://[::1]:8001",
        "https://app.localhost",
        "http://127.0.0.2:9000",
    ],
)
def test_production_refuses_development_and_other_loopback_origins(origins: str) -> None:
    result = check_deploy(DJANGO_SECRET_KEY=OWN_KEY, DJANGO_CSRF_TRUSTED_ORIGINS=origins)

    assert result.returncode == 1
    assert "ImproperlyConfigured: DJANGO_CSRF_TRUSTED_ORIGINS names a loopback origin" in (
        result.stderr
    )
