"""A project deleted by a cascade (its owner's account deleted) takes its workspace along."""

from typing import Any

from django.db import transaction
from django.db.models.signals import post_delete
from django.dispatch import receiver

from .models import Project
from .workspace import workspace_path_for_project, workspace_remove


@receiver(post_delete, sender=Project)
def _project_deleted(sender: Any, instance: Project, **_: Any) -> None:
    """Remove the workspace once the rows are gone for good (on commit); idempotent, so a
    ``project_delete`` that removes it too does no harm."""
    workspace = workspace_path_for_project(project_id=instance.pk)
    transaction.on_commit(lambda: workspace_remove(workspace=workspace))
