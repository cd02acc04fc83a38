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
