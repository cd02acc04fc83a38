"""A project's connection to its forge (GitHub, Gitea/Forgejo, GitLab)."""

from __future__ import annotations

from django.db import models

from common import secrets

from .forge_urls import default_clone_url


class ForgeConnection(models.Model):
    """Where a project's repository lives and the credentials to deliver to it.

    One per project. The token, SSH key and webhook secret are stored as Fernet ciphertext
    only (``common.secrets``); the API never returns them, only whether each is set.
    ``remote_url`` overrides the git remote (default: the forge repository's clone URL).
    """

    class Kind(models.TextChoices):
        GITHUB = "github", "GitHub"
        GITEA = "gitea", "Gitea / Forgejo"
        GITLAB = "gitlab", "GitLab"

    SECRET_FIELDS = ("token", "ssh_key", "webhook_secret")
    # The ciphertext columns ``manage.py rotate_secrets`` re-encrypts (``common.secrets``).
    ENCRYPTED_FIELDS = ("token_ciphertext", "ssh_key_ciphertext", "webhook_secret_ciphertext")

    project = models.OneToOneField(
        "projects.Project", on_delete=models.CASCADE, related_name="forge_connection"
    )
    kind = models.CharField(max_length=10, choices=Kind.choices)
    api_url = models.CharField(max_length=500)
    repository = models.CharField(max_length=300)
    remote_url = models.CharField(max_length=500, blank=True, default="")
    token_ciphertext = models.TextField(blank=True, default="")
    ssh_key_ciphertext = models.TextField(blank=True, default="")
    webhook_secret_ciphertext = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=models.Q(kind__in=["github", "gitea", "gitlab"]),
                name="forge_connection_kind_known",
            ),
            models.CheckConstraint(
                condition=~models.Q(repository="") & ~models.Q(api_url=""),
                name="forge_connection_named",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.kind}:{self.repository}"

    def set_secret(self, name: str, value: str) -> None:
        """Store ``value`` encrypted as secret ``name`` (token, ssh_key, webhook_secret);
        an empty value clears it. The caller saves."""
        if name not in self.SECRET_FIELDS:
            raise ValueError(name)
        setattr(self, f"{name}_ciphertext", secrets.encrypt(value) if value else "")

    def secret(self, name: str) -> secrets.Secret | None:
        """Secret ``name`` decrypted, or None when it is not set (read it only where it is
        sent)."""
        if name not in self.SECRET_FIELDS:
            raise ValueError(name)
        ciphertext = getattr(self, f"{name}_ciphertext")
        return secrets.decrypt(ciphertext) if ciphertext else None

    def has_secret(self, name: str) -> bool:
        return bool(getattr(self, f"{name}_ciphertext"))

    @property
    def clone_url(self) -> str:
        """The git remote deliveries push to: ``remote_url``, else the forge's clone URL."""
        return self.remote_url or default_clone_url(self.kind, self.api_url, self.repository)
