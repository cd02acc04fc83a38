"""manage.py generate against a real Celery worker and the offline model, to the end."""

import io
import zipfile
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command

from pipeline.models import Event, Run

pytestmark = [pytest.mark.slow, pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

PROMPT = "A todo list manager with tags"


@pytest.fixture(autouse=True)
def _media(tmp_path: Path, settings: Any) -> None:
    settings.MEDIA_ROOT = str(tmp_path / "media")


def generate(*args: str) -> str:
    out = io.StringIO()
    call_command("generate", *args, stdout=out, stderr=io.StringIO())
    return out.getvalue()


def test_generate_streams_a_run_to_completion_and_prints_where_the_files_are(
    celery_worker: Any, project: Any, no_sandbox: None, tmp_path: Path
) -> None:
    output = generate(
        str(project.pk),
        PROMPT,
        "--provider",
        "offline",
        "--zip",
        str(tmp_path / "run.zip"),
        "--timeout",
        "240",
    )

    run = Run.objects.get(project=project)
    with zipfile.ZipFile(tmp_path / "run.zip") as archive:
        names = set(archive.namelist())
    assert (
        run.status,
        "stage design started" in output,
        "step  architect r1 done  model=offline:offline tokens=" in output,
        f"Run {run.pk} completed" in output,
        f"/projects/{project.pk}/files?run={run.pk}" in output,
        "todo_list/cli.py" in names,
    ) == (Run.Status.COMPLETED, True, True, True, True, True)


def test_generate_by_project_name_approves_the_gate_with_approve(
    celery_worker: Any, project: Any, no_sandbox: None
) -> None:
    output = generate(
        project.name,
        PROMPT,
        "--require-approval",
        "--approve",
        "--user",
        project.owner.email,
        "--timeout",
        "240",
    )

    run = Run.objects.get(project=project)
    types = list(Event.objects.filter(run=run).values_list("type", flat=True))
    assert (
        run.status,
        "run.awaiting_approval" in types,
        "run.approved" in types,
        "approved (--approve)" in output,
    ) == (Run.Status.COMPLETED, True, True, True)
