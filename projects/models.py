"""Projects: what a user asks the agents to build."""

from django.conf import settings
from django.db import models


class Project(models.Model):
    """A user's project; runs and artifacts hang off it. Only its owner ever sees it."""

    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="projects"
    )
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["owner", "-created_at"])]
        constraints = [
            models.CheckConstraint(condition=~models.Q(name=""), name="project_name_not_empty"),
        ]

    def __str__(self) -> str:
        return self.name


class Artifact(models.Model):
    """A file a run produced: the path in the run's tree and a content-addressed blob.

    Blobs are stored once per sha256 under ``blobs/<aa>/<sha256>`` in Django's storage
    (local filesystem by default, S3 when configured); many rows may share one blob.
    ``binary`` flags content a model must never be shown.
    """

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="artifacts")
    run = models.ForeignKey("pipeline.Run", on_delete=models.CASCADE, related_name="artifacts")
    path = models.CharField(max_length=500)
    sha256 = models.CharField(max_length=64)
    size = models.PositiveBigIntegerField()
    storage_key = models.CharField(max_length=200)
    # Binary content (a NUL in its first bytes, or not UTF-8): kept and delivered as it is,
    # never shown to a model.
    binary = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["path"]
        constraints = [
            models.UniqueConstraint(fields=["run", "path"], name="artifact_run_path_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.path} ({self.sha256[:12]})"
