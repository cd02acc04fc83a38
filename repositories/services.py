"""Writes of the repositories app: a project's forge connection."""

from __future__ import annotations

import logging
import re
from typing import Any

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from django.conf import settings
from django.db import transaction

from common.errors import ApplicationError
from common.outbound import OutboundRefused, check_url, repository_policy, resolve_checked
from projects.models import Project

from .forge_urls import default_api_url
from .models import ForgeConnection

logger = logging.getLogger(__name__)

REPOSITORY_NAME = re.compile(r"^[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)+$")
TOKEN_CHARS = re.compile(r"^[\x21-\x7e]+$")  # printable ASCII, no spaces
MAX_SSH_KEY_CHARS = 20_000


class InvalidForgeSettings(ApplicationError):
    """A forge connection field that cannot be used; ``errors`` names the field."""

    code = "invalid"

    def __init__(self, field: str, message: str):
        super().__init__(f"{field}: {message}", extra={"errors": {field: [message]}})


def _check_network_url(field: str, url: str, *, schemes: set[str]) -> str:
    policy = repository_policy()
    try:
        target = check_url(url, policy, schemes=schemes & (set(policy.schemes) | {"ssh"}))
        if target.literal is not None:  # an address can be judged now; a name only at use
            resolve_checked(target, policy)
    except OutboundRefused as exc:
        raise InvalidForgeSettings(field, exc.detail) from exc
    return url


def _check_api_url(kind: str, api_url: str | None) -> str:
    url = (api_url or default_api_url(kind) or "").strip().rstrip("/")
    if not url:
        raise InvalidForgeSettings("api_url", "required for a Gitea or Forgejo forge.")
    if len(url) > 500:
        raise InvalidForgeSettings("api_url", "at most 500 characters.")
    return _check_network_url("api_url", url, schemes={"https", "http"})


def _check_repository(kind: str, repository: str) -> str:
    name = repository.strip().strip("/").removesuffix(".git")
    parts = name.split("/")
    if (
        not REPOSITORY_NAME.match(name)
        or len(name) > 300
        or any(part in (".", "..") for part in parts)
        or (kind != "gitlab" and len(parts) != 2)
    ):
        shape = "group/…/name" if kind == "gitlab" else "owner/name"
        raise InvalidForgeSettings("repository", f"give it as {shape}.")
    return name


def _check_remote_url(remote_url: str) -> str:
    url = remote_url.strip()
    if not url:
        return ""
    if len(url) > 500:
        raise InvalidForgeSettings("remote_url", "at most 500 characters.")
    if url.lower().startswith("file://"):
        if not settings.REPOSITORY_ALLOW_LOCAL:
            raise InvalidForgeSettings(
                "remote_url", "file:// remotes are not allowed (REPOSITORY_ALLOW_LOCAL is off)."
            )
        return url
    return _check_network_url("remote_url", url, schemes={"https", "http", "ssh"})


def _check_token(token: str) -> str:
    token = token.strip()
    if not token:
        return ""
    if len(token) > 1000 or not TOKEN_CHARS.match(token):
        raise InvalidForgeSettings("token", "printable characters without spaces, at most 1000.")
    return token


def _check_ssh_key(ssh_key: str) -> str:
    text = ssh_key.replace("\r\n", "\n").strip()
    if not text:
        return ""
    if len(text) > MAX_SSH_KEY_CHARS:
        raise InvalidForgeSettings("ssh_key", "too long for a private key.")
    data = text.encode() + b"\n"
    try:
        if b"OPENSSH PRIVATE KEY" in data:
            serialization.load_ssh_private_key(data, password=None)
        else:
            serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise InvalidForgeSettings(
            "ssh_key", "not an OpenSSH or PEM private key without a passphrase."
        ) from exc
    return text + "\n"


def _check_webhook_secret(value: str) -> str:
    if not value:
        return ""
    if len(value) > 500 or any(ord(char) < 32 for char in value):
        raise InvalidForgeSettings("webhook_secret", "at most 500 printable characters.")
    return value


@transaction.atomic
def forge_connection_put(
    *,
    project: Project,
    kind: str,
    repository: str,
    api_url: str | None = None,
    remote_url: str = "",
    token: str | None = None,
    ssh_key: str | None = None,
    webhook_secret: str | None = None,
) -> ForgeConnection:
    """Set the project's forge connection (create or replace its fields).

    A secret left out (None) keeps its stored value; an empty string clears it. A token is
    required when the connection is created. Secrets are stored encrypted; nothing of them
    is logged.
    """
    if kind not in ForgeConnection.Kind.values:
        raise InvalidForgeSettings("kind", "one of github, gitea, gitlab.")
    values: dict[str, Any] = {
        "api_url": _check_api_url(kind, api_url),
        "repository": _check_repository(kind, repository),
        "remote_url": _check_remote_url(remote_url or ""),
    }
    given = {
        "token": None if token is None else _check_token(token),
        "ssh_key": None if ssh_key is None else _check_ssh_key(ssh_key),
        "webhook_secret": None if webhook_secret is None else _check_webhook_secret(webhook_secret),
    }
    connection = ForgeConnection.objects.select_for_update().filter(
        project=project
    ).first() or ForgeConnection(project=project)
    if given["token"] == "" or (given["token"] is None and not connection.has_secret("token")):
        raise InvalidForgeSettings("token", "required (the forge's API needs it).")
    connection.kind = kind
    for name, value in values.items():
        setattr(connection, name, value)
    for name, secret in given.items():
        if secret is not None:
            connection.set_secret(name, secret)
    connection.save()
    logger.info(
        "repositories.forge_set",
        extra={"project_id": project.pk, "kind": kind, "repository": connection.repository},
    )
    return connection


def forge_connection_delete(*, connection: ForgeConnection) -> None:
    """Forget a project's forge connection and its secrets."""
    project_id = connection.project_id
    connection.delete()
    logger.info("repositories.forge_deleted", extra={"project_id": project_id})
