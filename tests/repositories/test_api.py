"""``PUT / GET / DELETE /projects/{id}/forge``: owner only, secrets write-only and encrypted,
plain validation errors."""

import logging

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from django.db import connection as db_connection

from repositories.models import ForgeConnection

TOKEN = "ghp_AbCdEf0123456789TokenValue"


def url(project) -> str:
    return f"/projects/{project.id}/forge"


def github(**extra):
    return {"kind": "github", "repository": "acme/app", "token": TOKEN, **extra}


def ssh_key() -> str:
    key = ed25519.Ed25519PrivateKey.generate()
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.OpenSSH,
        serialization.NoEncryption(),
    ).decode()


def test_put_sets_the_connection_and_answers_without_secrets(api_client, project):
    response = api_client.put(url(project), github(webhook_secret="hook-secret-1"), format="json")
    assert response.status_code == 200
    body = response.json()
    assert {k: v for k, v in body.items() if k not in ("created_at", "updated_at")} == {
        "project": project.id,
        "kind": "github",
        "api_url": "https://api.github.com",
        "repository": "acme/app",
        "remote_url": "",
        "clone_url": "https://github.com/acme/app.git",
        "has_token": True,
        "has_ssh_key": False,
        "has_webhook_secret": True,
    }
    assert TOKEN not in response.content.decode()


def test_get_answers_the_connection_without_secrets(api_client, project):
    api_client.put(url(project), github(ssh_key=ssh_key()), format="json")
    response = api_client.get(url(project))
    assert response.status_code == 200
    assert (response.json()["has_token"], response.json()["has_ssh_key"]) == (True, True)
    assert not {"token", "ssh_key", "webhook_secret"} & set(response.json())


def test_the_database_holds_the_secrets_only_as_ciphertext(api_client, project):
    key = ssh_key()
    api_client.put(url(project), github(ssh_key=key, webhook_secret="hook-secret-1"), format="json")
    with db_connection.cursor() as cursor:
        cursor.execute("SELECT * FROM repositories_forgeconnection")
        row = " ".join(str(value) for value in cursor.fetchone())
    assert TOKEN not in row
    assert "hook-secret-1" not in row
    assert "OPENSSH PRIVATE KEY" not in row
    stored = ForgeConnection.objects.get(project=project)
    assert stored.secret("token").reveal() == TOKEN
    assert stored.secret("ssh_key").reveal() == key.strip() + "\n"


def test_a_later_put_without_secrets_keeps_them_and_an_empty_one_clears_it(api_client, project):
    api_client.put(url(project), github(ssh_key=ssh_key()), format="json")
    kept = api_client.put(
        url(project), {"kind": "github", "repository": "acme/other"}, format="json"
    )
    assert (kept.json()["repository"], kept.json()["has_token"], kept.json()["has_ssh_key"]) == (
        "acme/other",
        True,
        True,
    )
    cleared = api_client.put(
        url(project), {"kind": "github", "repository": "acme/other", "ssh_key": ""}, format="json"
    )
    assert (cleared.json()["has_token"], cleared.json()["has_ssh_key"]) == (True, False)


def test_another_users_project_is_404_and_nothing_is_stored(other_client, project):
    assert other_client.put(url(project), github(), format="json").status_code == 404
    assert other_client.get(url(project)).status_code == 404
    assert other_client.delete(url(project)).status_code == 404
    assert ForgeConnection.objects.count() == 0


def test_another_users_connection_is_404_and_stays(api_client, other_client, project):
    api_client.put(url(project), github(), format="json")
    assert other_client.get(url(project)).status_code == 404
    assert other_client.delete(url(project)).status_code == 404
    assert ForgeConnection.objects.filter(project=project).count() == 1


def test_a_project_without_a_connection_is_404(api_client, project):
    response = api_client.get(url(project))
    assert (response.status_code, response.json()) == (
        404,
        {"detail": "This project has no forge connection.", "code": "not_found"},
    )


def test_delete_forgets_the_connection(api_client, project):
    api_client.put(url(project), github(), format="json")
    assert api_client.delete(url(project)).status_code == 204
    assert api_client.get(url(project)).status_code == 404


def test_unauthenticated_is_401(anon_client, project):
    assert anon_client.get(url(project)).status_code == 401


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        ({"repository": "acme/app"}, "token", "required (the forge's API needs it)."),
        ({"repository": "acme"}, "repository", "give it as owner/name."),
        ({"repository": "acme/../x"}, "repository", "give it as owner/name."),
        ({"kind": "gitea", "token": "t"}, "api_url", "required for a Gitea or Forgejo forge."),
        (
            {"api_url": "http://127.0.0.1:3000", "token": "t"},
            "api_url",
            "The scheme 'http' is not allowed here (https).",
        ),
        (
            {"api_url": "https://10.0.0.7/api/v3", "token": "t"},
            "api_url",
            "The host 10.0.0.7 is not on the list of allowed hosts.",
        ),
        (
            {"api_url": "https://forge.evil.example/api/v1", "kind": "gitea", "token": "t"},
            "api_url",
            "The host forge.evil.example is not on the list of allowed hosts.",
        ),
        (
            {"remote_url": "file:///srv/repo.git", "token": "t"},
            "remote_url",
            "file:// remotes are not allowed (REPOSITORY_ALLOW_LOCAL is off).",
        ),
        (
            {"remote_url": "https://user:pw@github.com/acme/app.git", "token": "t"},
            "remote_url",
            "A URL may not carry credentials; give them separately.",
        ),
        ({"token": "has space"}, "token", "printable characters without spaces, at most 1000."),
        (
            {"token": "t", "ssh_key": "-----BEGIN OPENSSH PRIVATE KEY-----\nnope\n"},
            "ssh_key",
            "not an OpenSSH or PEM private key without a passphrase.",
        ),
    ],
)
def test_bad_settings_are_refused_in_plain_words(api_client, project, body, field, message):
    payload = {"kind": "github", "repository": "acme/app", **body}
    response = api_client.put(url(project), payload, format="json")
    assert (response.status_code, response.json()) == (
        400,
        {"detail": f"{field}: {message}", "code": "invalid", "errors": {field: [message]}},
    )
    assert ForgeConnection.objects.count() == 0


def test_a_private_address_is_refused_even_when_listed(api_client, project, settings):
    settings.REPOSITORY_ALLOWED_HOSTS = ["*"]
    payload = github(api_url="https://10.0.0.7/api/v3")
    response = api_client.put(url(project), payload, format="json")
    assert response.json()["detail"] == (
        "api_url: 10.0.0.7 is a private address, which is not allowed."
    )


def test_local_forges_are_accepted_when_the_operator_allows_them(api_client, project, local_git):
    payload = github(
        kind="gitea", api_url="http://127.0.0.1:3000/api/v1", remote_url="file:///srv/app.git"
    )
    response = api_client.put(url(project), payload, format="json")
    assert response.status_code == 200
    assert response.json()["clone_url"] == "file:///srv/app.git"


def test_the_clone_url_follows_each_forge(api_client, project, settings):
    settings.REPOSITORY_ALLOWED_HOSTS = ["*"]
    cases = [
        ({"kind": "gitlab", "repository": "group/sub/app"}, "https://gitlab.com/group/sub/app.git"),
        (
            {"kind": "gitea", "api_url": "https://codeberg.org/api/v1"},
            "https://codeberg.org/acme/app.git",
        ),
        (
            {"kind": "github", "api_url": "https://ghe.example.com/api/v3"},
            "https://ghe.example.com/acme/app.git",
        ),
    ]
    for extra, clone in cases:
        response = api_client.put(url(project), github(**extra), format="json")
        assert response.json()["clone_url"] == clone


def test_no_secret_reaches_the_logs(api_client, project, caplog):
    caplog.set_level(logging.DEBUG)
    api_client.put(url(project), github(webhook_secret="hook-secret-1"), format="json")
    logged = " ".join(str(record.__dict__) for record in caplog.records)
    assert "repositories.forge_set" in logged
    assert TOKEN not in logged and "hook-secret-1" not in logged
