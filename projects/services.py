"""Writes of projects."""

from typing import Any

from .models import Project


def project_create(*, owner: Any, name: str, description: str = "") -> Project:
    """Create a project owned by ``owner``."""
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
    """Delete a project and everything that hangs off it."""
    project.delete()
