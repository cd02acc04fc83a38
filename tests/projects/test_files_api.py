"""GET /projects/{id}/files, /files/{path}, /download and /diff: owner only, per run."""

import io
import zipfile
from pathlib import Path
from typing import Any

import pytest

from pipeline.models import Run
from projects.artifacts import artifact_store_tree
from projects.storage import sha256_hex
from tests.factories import ProjectFactory

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _media(tmp_path: Path, settings: Any) -> None:
    settings.MEDIA_ROOT = str(tmp_path / "media")


@pytest.fixture
def old_run(project: Any) -> Run:
    run = Run.objects.create(project=project, prompt="v1", status=Run.Status.COMPLETED)
    artifact_store_tree(run=run, files={"main.py": "print(1)\n", "gone.txt": "bye\n"})
    return run


@pytest.fixture
def new_run(project: Any, old_run: Run) -> Run:
    run = Run.objects.create(project=project, prompt="v2", status=Run.Status.COMPLETED)
    artifact_store_tree(
        run=run, files={"main.py": "print(2)\n", "pkg/util.py": "X = 1\n", "logo.bin": b"\x00\x01"}
    )
    return run


def test_files_lists_the_latest_completed_runs_tree(
    api_client: Any, project: Any, new_run: Run
) -> None:
    response = api_client.get(f"/projects/{project.pk}/files")

    body = response.json()
    assert (response.status_code, body["run"], body["files"]) == (
        200,
        new_run.pk,
        [
            {"path": "logo.bin", "size": 2, "sha256": sha256_hex(b"\x00\x01")},
            {"path": "main.py", "size": 9, "sha256": sha256_hex(b"print(2)\n")},
            {"path": "pkg/util.py", "size": 6, "sha256": sha256_hex(b"X = 1\n")},
        ],
    )


def test_files_of_an_older_run_are_kept_and_chosen_with_the_run_parameter(
    api_client: Any, project: Any, old_run: Run, new_run: Run
) -> None:
    response = api_client.get(f"/projects/{project.pk}/files?run={old_run.pk}")

    assert [f["path"] for f in response.json()["files"]] == ["gone.txt", "main.py"]


def test_a_project_without_files_answers_404(api_client: Any, project: Any) -> None:
    response = api_client.get(f"/projects/{project.pk}/files")

    assert (response.status_code, response.json()["code"]) == (404, "no_files")


def test_file_content_is_served_as_plain_text(api_client: Any, project: Any, new_run: Run) -> None:
    response = api_client.get(f"/projects/{project.pk}/files/pkg/util.py")

    assert (response.status_code, response.content, response["Content-Type"]) == (
        200,
        b"X = 1\n",
        "text/plain; charset=utf-8",
    )


@pytest.mark.parametrize(
    ("path", "content_type"),
    [
        ("index.html", "text/plain; charset=utf-8"),
        ("app.svg", "application/octet-stream"),
        ("main.py", "text/plain; charset=utf-8"),
        ("logo.bin", "application/octet-stream"),
    ],
)
def test_a_generated_file_is_served_sandboxed_and_never_sniffed(
    api_client: Any, project: Any, path: str, content_type: str
) -> None:
    page = "<html><script>fetch('/auth/me')</script></html>\n"
    run = Run.objects.create(project=project, prompt="web", status=Run.Status.COMPLETED)
    artifact_store_tree(
        run=run,
        files={
            "index.html": page,
            "app.svg": "<svg xmlns='http://www.w3.org/2000/svg'><script>alert(1)</script></svg>",
            "main.py": "print(1)\n",
            "logo.bin": b"\x00<html>",
        },
    )

    response = api_client.get(f"/projects/{project.pk}/files/{path}")

    assert (response.status_code, response["Content-Type"]) == (200, content_type)
    assert response["Content-Security-Policy"] == "sandbox; default-src 'none'"
    assert response["X-Content-Type-Options"] == "nosniff"


def test_binary_content_is_served_as_octet_stream(
    api_client: Any, project: Any, new_run: Run
) -> None:
    response = api_client.get(f"/projects/{project.pk}/files/logo.bin")

    assert (response.content, response["Content-Type"]) == (
        b"\x00\x01",
        "application/octet-stream",
    )


def test_file_content_of_an_older_run(
    api_client: Any, project: Any, old_run: Run, new_run: Run
) -> None:
    response = api_client.get(f"/projects/{project.pk}/files/main.py?run={old_run.pk}")

    assert response.content == b"print(1)\n"


def test_a_missing_file_is_404(api_client: Any, project: Any, new_run: Run) -> None:
    assert api_client.get(f"/projects/{project.pk}/files/nope.py").status_code == 404


@pytest.mark.parametrize(
    "path", ["../../etc/passwd", "pkg/../../main.py", "%2e%2e/%2e%2e/etc/passwd", "a\\..\\b"]
)
def test_path_traversal_is_refused(api_client: Any, project: Any, new_run: Run, path: str) -> None:
    response = api_client.get(f"/projects/{project.pk}/files/{path}")

    assert (response.status_code, response.json()["code"]) == (400, "invalid_path")


def test_download_is_a_zip_of_the_runs_files(api_client: Any, project: Any, new_run: Run) -> None:
    response = api_client.get(f"/projects/{project.pk}/download")

    with zipfile.ZipFile(io.BytesIO(b"".join(response.streaming_content))) as archive:
        contents = {name: archive.read(name) for name in archive.namelist()}
    assert (response["Content-Type"], contents) == (
        "application/zip",
        {"logo.bin": b"\x00\x01", "main.py": b"print(2)\n", "pkg/util.py": b"X = 1\n"},
    )


def test_download_names_the_archive_after_project_and_run(
    api_client: Any, project: Any, new_run: Run
) -> None:
    response = api_client.get(f"/projects/{project.pk}/download")

    assert response["Content-Disposition"] == (
        f'attachment; filename="{project.name.replace(" ", "-")}-run{new_run.pk}.zip"'
    )


def test_diff_between_two_runs(api_client: Any, project: Any, old_run: Run, new_run: Run) -> None:
    response = api_client.get(f"/projects/{project.pk}/diff?from={old_run.pk}&to={new_run.pk}")

    body = response.json()
    assert (body["added"], body["removed"], body["changed"], body["diffs"]["main.py"]) == (
        ["logo.bin", "pkg/util.py"],
        ["gone.txt"],
        ["main.py"],
        "--- a/main.py\n+++ b/main.py\n@@ -1 +1 @@\n-print(1)\n+print(2)\n",
    )


def test_diff_requires_the_from_run(api_client: Any, project: Any, new_run: Run) -> None:
    response = api_client.get(f"/projects/{project.pk}/diff")

    assert (response.status_code, response.json()["code"]) == (400, "invalid")


def test_a_run_of_another_project_is_404(api_client: Any, project: Any, user: Any) -> None:
    elsewhere = Run.objects.create(project=ProjectFactory(owner=user), prompt="p")
    artifact_store_tree(run=elsewhere, files={"a.txt": "a"})

    response = api_client.get(f"/projects/{project.pk}/files?run={elsewhere.pk}")

    assert response.status_code == 404


@pytest.mark.parametrize("url", ["files", "files/main.py", "download", "diff?from={old}&to={new}"])
def test_another_users_project_is_404(
    other_client: Any, project: Any, old_run: Run, new_run: Run, url: str
) -> None:
    response = other_client.get(
        f"/projects/{project.pk}/" + url.format(old=old_run.pk, new=new_run.pk)
    )

    assert response.status_code == 404


def test_anonymous_clients_are_refused(anon_client: Any, project: Any, new_run: Run) -> None:
    assert anon_client.get(f"/projects/{project.pk}/files").status_code == 401
