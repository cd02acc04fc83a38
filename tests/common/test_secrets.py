"""Secrets at rest (``common.secrets``): Fernet under keys from the environment, one rotation
command for the secrets of every app (forge connections and webhook endpoints), a labelled
development key, and production refusing to start without real keys."""

import io
import os
import subprocess
import sys

import pytest
from cryptography.fernet import Fernet
from django.conf import settings as django_settings
from django.core.management import CommandError, call_command

from common import secrets
from repositories.models import ForgeConnection
from repositories.services import forge_connection_put
from webhooks.models import Endpoint
from webhooks.services import endpoint_create

KEY_A = Fernet.generate_key().decode()
KEY_B = Fernet.generate_key().decode()


def stored(project) -> ForgeConnection:
    return ForgeConnection.objects.get(project=project)


def rotate_secrets() -> str:
    out = io.StringIO()
    call_command("rotate_secrets", stdout=out)
    return out.getvalue().strip()


def test_a_secret_never_prints_itself():
    secret = secrets.Secret("hunter2")
    assert (repr(secret), str(secret), f"{secret}") == ("Secret(***)",) * 3
    assert secret.reveal() == "hunter2"


def test_rotation_reencrypts_every_secret_with_the_first_key(project, settings):
    settings.SECRETS_ENCRYPTION_KEYS = [KEY_A]
    settings.WEBHOOKS_ALLOW_LOCAL = True
    forge_connection_put(
        project=project, kind="github", repository="acme/app", token="tok-1", webhook_secret="wh-1"
    )
    endpoint, signing_secret = endpoint_create(
        project=project, url="http://127.0.0.1:9/hook", events=["run.completed"]
    )
    before = stored(project).token_ciphertext
    endpoint_before = endpoint.secret_encrypted
    settings.SECRETS_ENCRYPTION_KEYS = [KEY_B, KEY_A]
    assert rotate_secrets() == (
        "Re-encrypted 3 secret(s) with the first key "
        "(repositories.ForgeConnection, webhooks.Endpoint)."
    )
    settings.SECRETS_ENCRYPTION_KEYS = [KEY_B]  # the old key dropped
    connection = stored(project)
    assert connection.token_ciphertext != before
    assert (connection.secret("token").reveal(), connection.secret("webhook_secret").reveal()) == (
        "tok-1",
        "wh-1",
    )
    assert Fernet(KEY_B.encode()).decrypt(connection.token_ciphertext.encode()) == b"tok-1"
    endpoint = Endpoint.objects.get(pk=endpoint.pk)
    assert endpoint.secret_encrypted != endpoint_before
    assert secrets.decrypt(endpoint.secret_encrypted).reveal() == signing_secret
    assert (
        Fernet(KEY_B.encode()).decrypt(endpoint.secret_encrypted.encode()).decode()
        == signing_secret
    )


def test_rotation_stops_at_a_secret_no_key_opens_and_names_its_row(project, settings):
    settings.SECRETS_ENCRYPTION_KEYS = [KEY_A]
    forge_connection_put(project=project, kind="github", repository="acme/app", token="tok-1")
    settings.SECRETS_ENCRYPTION_KEYS = [KEY_B]  # KEY_A dropped before rotating
    with pytest.raises(CommandError) as refused:
        rotate_secrets()
    assert str(refused.value) == (
        f"repositories.ForgeConnection {stored(project).pk}: token_ciphertext cannot be read "
        "with the configured keys; put the key it was stored with back in "
        "SECRETS_ENCRYPTION_KEYS, or set that secret again."
    )
    settings.SECRETS_ENCRYPTION_KEYS = [KEY_A]
    assert stored(project).secret("token").reveal() == "tok-1"  # left as it was


def test_without_rotation_dropping_the_old_key_makes_the_secret_unreadable(project, settings):
    settings.SECRETS_ENCRYPTION_KEYS = [KEY_A]
    forge_connection_put(project=project, kind="github", repository="acme/app", token="tok-1")
    settings.SECRETS_ENCRYPTION_KEYS = [KEY_B]
    with pytest.raises(secrets.SecretUnreadable) as unreadable:
        stored(project).secret("token")
    assert unreadable.value.code == "secret_unreadable"


def test_every_listed_key_decrypts_and_the_first_encrypts(settings):
    settings.SECRETS_ENCRYPTION_KEYS = [KEY_A]
    old = secrets.encrypt("old")
    settings.SECRETS_ENCRYPTION_KEYS = [KEY_B, KEY_A]
    new = secrets.encrypt("new")
    assert secrets.decrypt(old).reveal() == "old"
    assert Fernet(KEY_B.encode()).decrypt(new.encode()) == b"new"


def test_without_keys_the_development_key_derived_from_the_secret_key_is_used(settings):
    settings.SECRETS_ENCRYPTION_KEYS = []
    token = secrets.encrypt("dev")
    derived = secrets.development_key(django_settings.SECRET_KEY)
    assert Fernet(derived).decrypt(token.encode()) == b"dev"
    assert secrets.DEVELOPMENT_KEY_LABEL.startswith(b"aiflow development-only")


def _production(**env: str) -> subprocess.CompletedProcess:
    base = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DJANGO_", "SECRETS_ENCRYPTION_KEYS", "TERMINAL_"))
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
    assert "Set SECRETS_ENCRYPTION_KEYS (Fernet keys)" in result.stderr


def test_production_refuses_a_key_that_is_not_a_fernet_key():
    result = _production(SECRETS_ENCRYPTION_KEYS="c2hvcnQ=")  # base64 of "short"
    assert result.returncode == 1
    assert "SECRETS_ENCRYPTION_KEYS: key 1 must decode to 32 bytes (a Fernet key)" in result.stderr


def test_production_starts_with_real_keys():
    assert _production(SECRETS_ENCRYPTION_KEYS=f"{KEY_A},{KEY_B}").returncode == 0
