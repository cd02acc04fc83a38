"""Secrets at rest: Fernet under keys from the environment, rotation by command, a labelled
development key, and production refusing to start without real keys."""

import os
import subprocess
import sys

import pytest
from cryptography.fernet import Fernet
from django.conf import settings as django_settings
from django.core.management import call_command

from repositories import secrets
from repositories.models import ForgeConnection
from repositories.services import forge_connection_put

KEY_A = Fernet.generate_key().decode()
KEY_B = Fernet.generate_key().decode()


def stored(project) -> ForgeConnection:
    return ForgeConnection.objects.get(project=project)


def test_a_secret_never_prints_itself():
    secret = secrets.Secret("hunter2")
    assert (repr(secret), str(secret), f"{secret}") == ("Secret(***)",) * 3
    assert secret.reveal() == "hunter2"


def test_rotation_reencrypts_every_secret_with_the_first_key(project, settings):
    settings.REPOSITORY_SECRET_KEYS = [KEY_A]
    forge_connection_put(
        project=project, kind="github", repository="acme/app", token="tok-1", webhook_secret="wh-1"
    )
    before = stored(project).token_ciphertext
    settings.REPOSITORY_SECRET_KEYS = [KEY_B, KEY_A]
    call_command("rotate_repository_secrets", stdout=open(os.devnull, "w"))  # noqa: SIM115
    settings.REPOSITORY_SECRET_KEYS = [KEY_B]  # the old key dropped
    connection = stored(project)
    assert connection.token_ciphertext != before
    assert (connection.secret("token").reveal(), connection.secret("webhook_secret").reveal()) == (
        "tok-1",
        "wh-1",
    )
    assert Fernet(KEY_B.encode()).decrypt(connection.token_ciphertext.encode()) == b"tok-1"


def test_without_rotation_dropping_the_old_key_makes_the_secret_unreadable(project, settings):
    settings.REPOSITORY_SECRET_KEYS = [KEY_A]
    forge_connection_put(project=project, kind="github", repository="acme/app", token="tok-1")
    settings.REPOSITORY_SECRET_KEYS = [KEY_B]
    with pytest.raises(secrets.SecretUnreadable) as unreadable:
        stored(project).secret("token")
    assert unreadable.value.code == "secret_unreadable"


def test_every_listed_key_decrypts_and_the_first_encrypts(settings):
    settings.REPOSITORY_SECRET_KEYS = [KEY_A]
    old = secrets.encrypt("old")
    settings.REPOSITORY_SECRET_KEYS = [KEY_B, KEY_A]
    new = secrets.encrypt("new")
    assert secrets.decrypt(old).reveal() == "old"
    assert Fernet(KEY_B.encode()).decrypt(new.encode()) == b"new"


def test_without_keys_the_development_key_derived_from_the_secret_key_is_used(settings):
    settings.REPOSITORY_SECRET_KEYS = []
    token = secrets.encrypt("dev")
    derived = secrets.development_key(django_settings.SECRET_KEY)
    assert Fernet(derived).decrypt(token.encode()) == b"dev"
    assert secrets.DEVELOPMENT_KEY_LABEL.startswith(b"aiflow development-only")


def _production(**env: str) -> subprocess.CompletedProcess:
    base = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DJANGO_", "REPOSITORY_SECRET", "TERMINAL_"))
    }
    return subprocess.run(  # noqa: S603 - our own interpreter and settings module
        [sys.executable, "-c", "from config.settings import production"],
        env={
            **base,
            "DJANGO_SECRET_KEY": "x" * 50,
            "DJANGO_CSRF_TRUSTED_ORIGINS": "https://aiflow.example.com",
            **env,
        },
        capture_output=True,
        text=True,
        check=False,
        cwd=django_settings.BASE_DIR,
    )


def test_production_refuses_to_start_without_secret_keys():
    result = _production()
    assert result.returncode == 1
    assert "Set REPOSITORY_SECRET_KEYS (Fernet keys)" in result.stderr


def test_production_refuses_a_key_that_is_not_a_fernet_key():
    result = _production(REPOSITORY_SECRET_KEYS="c2hvcnQ=")  # base64 of "short"
    assert result.returncode == 1
    assert "REPOSITORY_SECRET_KEYS: key 1 must decode to 32 bytes (a Fernet key)" in result.stderr


def test_production_starts_with_real_keys():
    assert _production(REPOSITORY_SECRET_KEYS=f"{KEY_A},{KEY_B}").returncode == 0
