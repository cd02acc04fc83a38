"""Writes of projects."""

from typing import Any

from django.db import transaction

from .models import Project
from .quotas import project_slot_take
from .workspace import workspace_path_for_project, workspace_remove


def project_create(*, owner: Any, name: str, description: str = "") -> Project:
    """Create a project owned by ``owner``; ``ProjectLimitReached`` past PROJECTS_MAX_PER_USER."""
    with transaction.atomic():
        project_slot_take(owner=owner)
        return Project.objects.create(owner=owner, name=name, description=description)


def project_update(*, project: Project, data: dict[str, Any]) -> Project:
    """Change the given fields of a project (only name and description are writable)."""
    fields = [name for name in ("name", "description") if name in data]
    for name in fields:
        setattr(project, name, data[name])
    if fields:
        project.save(update_fields=[*fields, "updated_at"])
    return project


def project_delete(*, project: Project) -> None:
    """Delete a project, everything that hangs off it, and its workspace on disk.

    Its active runs are cancelled first, exactly as ``POST /runs/{id}/cancel`` does (a
    ``pre_delete`` receiver of the pipeline: this app does not import it); what they spent
    stays in the spend ledger. The workspace goes once the rows are gone for good (on
    commit). Blobs stay: they are content-addressed and may be shared with other projects'
    artifacts.
    """
    workspace = workspace_path_for_project(project_id=project.pk)
    project.delete()
    transaction.on_commit(lambda: workspace_remove(workspace=workspace))
