"""manage.py generate: following a run's events to the end, exit status, artifact locations.

These follow runs whose events are published directly (``--attach``); the run started by
the command and driven by a real worker is in ``test_generate_command_e2e.py``.
"""

import io
import re
import zipfile
from pathlib import Path
from typing import Any

import pytest
from django.core.management import CommandError, call_command

from pipeline.events import publish
from pipeline.models import Run
from projects.artifacts import artifact_store_tree

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _media(tmp_path: Path, settings: Any) -> None:
    settings.MEDIA_ROOT = str(tmp_path / "media")
    settings.PUBLIC_BASE_URL = "http://aiflow.test"


@pytest.fixture
def run(project: Any) -> Run:
    return Run.objects.create(project=project, created_by=project.owner, prompt="p")


def publish_progress(run: Run) -> None:
    publish(run_id=run.pk, type="run.started")
    publish(run_id=run.pk, type="stage.started", payload={"stage": "design"})
    publish(
        run_id=run.pk,
        type="step.started",
        payload={"step_id": 7, "role": "architect", "round": 1, "attempt": 1, "task": None},
    )
    publish(
        run_id=run.pk,
        type="step.completed",
        payload={
            "step_id": 7,
            "role": "architect",
            "task": None,
            "provider": "offline",
            "model": "offline-1",
            "tokens_in": 120,
            "tokens_out": 340,
            "cost_usd": "0.001500",
            "latency_ms": 250,
        },
    )


def finish(run: Run, status: str, event_type: str, payload: dict | None = None) -> None:
    Run.objects.filter(pk=run.pk).update(status=status)
    publish(run_id=run.pk, type=event_type, payload=payload or {})


def generate(*args: str) -> str:
    out = io.StringIO()
    call_command("generate", *args, stdout=out, stderr=io.StringIO())
    return out.getvalue()


def test_progress_lines_show_stage_step_model_tokens_and_cost(run: Run) -> None:
    publish_progress(run)
    finish(run, Run.Status.COMPLETED, "run.completed")

    output = generate("--attach", str(run.pk))

    assert (
        "design      step  architect r1 done  model=offline:offline-1 tokens=120/340 "
        "cost=$0.001500" in output
    )


def test_every_line_starts_with_the_elapsed_time(run: Run) -> None:
    publish_progress(run)
    finish(run, Run.Status.COMPLETED, "run.completed")

    output = generate("--attach", str(run.pk))

    assert re.search(r"^\[\s*\d+\.\ds\] design\s+stage design started$", output, re.MULTILINE)


def test_a_completed_run_prints_where_its_artifacts_are(run: Run, project: Any) -> None:
    publish_progress(run)
    artifact_store_tree(run=run, files={"app.py": "print(1)\n"})
    finish(run, Run.Status.COMPLETED, "run.completed")

    output = generate("--attach", str(run.pk))

    assert (
        f"files: http://aiflow.test/projects/{project.pk}/files?run={run.pk}" in output
        and f"download: http://aiflow.test/projects/{project.pk}/download?run={run.pk}" in output
    )


def test_output_and_zip_options_write_the_files(run: Run, tmp_path: Path) -> None:
    artifact_store_tree(run=run, files={"src/app.py": "print(1)\n"})
    finish(run, Run.Status.COMPLETED, "run.completed")

    generate(
        "--attach", str(run.pk), "--output", str(tmp_path / "out"), "--zip", str(tmp_path / "r.zip")
    )

    with zipfile.ZipFile(tmp_path / "r.zip") as archive:
        zipped = archive.read("src/app.py")
    assert ((tmp_path / "out" / "src" / "app.py").read_bytes(), zipped) == (
        b"print(1)\n",
        b"print(1)\n",
    )


def test_a_failed_run_exits_with_status_1_and_the_reason(run: Run) -> None:
    publish_progress(run)
    Run.objects.filter(pk=run.pk).update(error="provider down")
    finish(run, Run.Status.FAILED, "run.failed", {"reason": "provider", "detail": "provider down"})

    with pytest.raises(CommandError) as failure:
        generate("--attach", str(run.pk))

    assert (failure.value.returncode, str(failure.value)) == (
        1,
        f"Run {run.pk} failed: provider down",
    )


def test_a_cancelled_run_exits_with_status_2(run: Run) -> None:
    finish(run, Run.Status.CANCELLED, "run.cancelled", {"reason": "cancelled"})

    with pytest.raises(CommandError) as failure:
        generate("--attach", str(run.pk))

    assert failure.value.returncode == 2


def test_following_stops_with_status_3_when_the_timeout_passes(run: Run) -> None:
    publish_progress(run)

    with pytest.raises(CommandError) as failure:
        generate("--attach", str(run.pk), "--timeout", "0.3", "--poll", "0.05")

    assert failure.value.returncode == 3


def test_an_unknown_project_is_an_error() -> None:
    with pytest.raises(CommandError, match="No project 'nope'"):
        generate("nope", "build something")


def test_an_unknown_user_is_an_error(project: Any) -> None:
    with pytest.raises(CommandError, match="No user with email ghost@example.com"):
        generate(str(project.pk), "build", "--user", "ghost@example.com")


def test_another_users_project_is_not_found_with_user(project: Any, other_user: Any) -> None:
    with pytest.raises(CommandError, match="No project"):
        generate(str(project.pk), "build", "--user", other_user.email)
