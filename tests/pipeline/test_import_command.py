"""manage.py import against a real Celery worker: an archive and a file:// repository, each
followed to the end with the baseline printed; a refused source said plainly."""

import io
from pathlib import Path
from typing import Any

import pytest
from django.core.management import CommandError, call_command

from pipeline.models import Run
from tests.pipeline.repo_fixtures import CALC_FILES, calc_repository, tar_gz

pytestmark = [pytest.mark.slow, pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


@pytest.fixture(autouse=True)
def _media(tmp_path: Path, settings: Any) -> None:
    settings.MEDIA_ROOT = str(tmp_path / "media")


def run_import(*args: str) -> str:
    out = io.StringIO()
    call_command("import", *args, stdout=out, stderr=io.StringIO())
    return out.getvalue()


def test_import_of_an_archive_streams_its_progress_and_prints_the_baseline(
    celery_worker: Any, project: Any, tmp_path: Path
) -> None:
    archive = tmp_path / "calc-main.tar.gz"
    archive.write_bytes(tar_gz(CALC_FILES))

    output = run_import(str(project.pk), "--archive", str(archive), "--timeout", "240")

    run = Run.objects.get(project=project)
    assert (run.kind, run.status) == ("import", "completed")
    for line in (
        f"Import run {run.pk} started for project {project.pk}",
        "run.started: import of calc-main.tar.gz",
        "import fetching: Reading the archive calc-main.tar.gz.",
        "import stored: Stored 6 files (1 binary, never shown to a model).",
        "Imported calc-main.tar.gz: 6 files",
        "Baseline (python -m pytest): passed, 2 passed, 0 failed, 0 errors, 0 skipped",
        f'Next: manage.py generate {project.pk} "what to change" builds on run {run.pk}.',
    ):
        assert line in output


def test_import_of_a_git_repository_by_project_name_prints_its_commit(
    celery_worker: Any, project: Any, tmp_path: Path, settings: Any, no_sandbox: None
) -> None:
    settings.REPOSITORY_ALLOW_LOCAL = True
    commit = calc_repository(tmp_path / "calc")

    output = run_import(project.name, "--git", f"file://{tmp_path / 'calc'}", "--ref", "main")

    assert f"Imported file://{tmp_path / 'calc'} at commit {commit}: 6 files" in output
    assert "Baseline: not run: The sandbox is off (SANDBOX_TESTS_ENABLED=false)" in output


def test_import_from_a_source_that_is_not_allowed_says_why(project: Any) -> None:
    with pytest.raises(CommandError) as caught:
        run_import(str(project.pk), "--git", "file:///srv/calc.git")

    assert str(caught.value) == "file:// remotes are not allowed (REPOSITORY_ALLOW_LOCAL is off)."
    assert not Run.objects.exists()
