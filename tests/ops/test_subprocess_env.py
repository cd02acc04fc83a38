"""Servers and workers the tests start reach the test database however PostgreSQL
authenticates: the password (and every other part of the connection) is passed on."""

import json
import subprocess
import sys

import environ
import pytest

from tests.net import ROOT, database_url, subprocess_env

FIELDS = ("USER", "PASSWORD", "HOST", "PORT", "NAME")


def _parsed(url: str) -> dict:
    config = environ.Env.db_url_config(url)
    return {key: str(config.get(key) or "") for key in (*FIELDS, "OPTIONS")}


def test_a_password_with_url_characters_survives_the_database_url():
    db = {
        "USER": "ai flow@ops",
        "PASSWORD": "p@ss:w/rd%?#&",
        "HOST": "db.internal",
        "PORT": 6432,
        "NAME": "test_aiflow_ops",
        "OPTIONS": {"sslmode": "require", "pool": {"min_size": 2}},
    }
    parsed = _parsed(database_url(db))
    assert {key: parsed[key] for key in FIELDS} == {
        "USER": "ai flow@ops",
        "PASSWORD": "p@ss:w/rd%?#&",
        "HOST": "db.internal",
        "PORT": "6432",
        "NAME": "test_aiflow_ops",
    }
    assert parsed["OPTIONS"] == str({"sslmode": "require"})


def test_a_unix_socket_host_is_passed_as_the_host_option():
    db = {"USER": "postgres", "PASSWORD": "", "HOST": "/run/postgresql", "NAME": "aiflow"}
    parsed = environ.Env.db_url_config(database_url(db))
    assert parsed["OPTIONS"] == {"host": "/run/postgresql"}
    assert (parsed["USER"], parsed["NAME"]) == ("postgres", "aiflow")


@pytest.mark.django_db
def test_a_subprocess_sees_the_same_database_settings_as_the_test_run():
    from django.db import connection

    code = (
        "import django, json; django.setup(); from django.db import connection as c; "
        f"print(json.dumps({{k: str(c.settings_dict[k]) for k in {FIELDS!r}}}))"
    )
    env = subprocess_env()
    # Settings name the test database for the test run; a subprocess reads DATABASE_URL.
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env={**env, "DJANGO_SETTINGS_MODULE": "config.settings.local"},
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    seen = json.loads(result.stdout.strip().splitlines()[-1])
    assert seen == {key: str(connection.settings_dict[key]) for key in FIELDS}
