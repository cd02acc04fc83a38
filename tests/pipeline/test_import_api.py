"""POST /projects/{id}/import: what is refused at once, with its reason, and what is stored
before the import is queued (these tests commit nothing, so no worker is asked)."""

import io
from pathlib import Path
from typing import Any

import pytest

from pipeline.models import Run, RunImport
from projects.storage import artifact_storage
from tests.factories import ProjectFactory
from tests.pipeline.repo_fixtures import CALC_FILES, tar_gz

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _media(tmp_path: Path, settings: Any) -> None:
    settings.MEDIA_ROOT = str(tmp_path / "media")


def uploads(tmp_path: Path) -> list[str]:
    folder = tmp_path / "media" / "imports"
    return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []


def post_git(client: Any, project: Any, **git: Any) -> Any:
    return client.post(f"/projects/{project.id}/import", {"git": git}, format="json")


def post_archive(client: Any, project: Any, data: bytes, name: str = "calc.tar.gz") -> Any:
    upload = io.BytesIO(data)
    upload.name = name
    return client.post(f"/projects/{project.id}/import", {"archive": upload}, format="multipart")


def test_an_archive_is_stored_before_the_import_run_is_queued(api_client, project, tmp_path):
    data = tar_gz(CALC_FILES)

    response = post_archive(api_client, project, data)

    assert response.status_code == 202, response.json()
    body = response.json()
    run = Run.objects.get(id=body["run_id"])
    assert (body["status"], body["events_url"]) == ("queued", f"/runs/{run.id}/events")
    assert (run.kind, run.prompt) == ("import", "Import the archive calc.tar.gz")
    record = RunImport.objects.get(run=run)
    assert (record.source, record.archive_name, record.archive_bytes) == (
        "archive",
        "calc.tar.gz",
        len(data),
    )
    with artifact_storage().open(record.archive_key, "rb") as stored:
        assert stored.read() == data
    assert api_client.get(f"/runs/{run.id}").json()["kind"] == "import"


def test_a_git_source_is_recorded_with_its_ref(api_client, project, settings):
    settings.REPOSITORY_ALLOWED_HOSTS = ["git.example.org"]

    response = post_git(api_client, project, url="https://git.example.org/team/calc.git", ref="v1")

    assert response.status_code == 202, response.json()
    record = RunImport.objects.get(run_id=response.json()["run_id"])
    assert (record.source, record.url, record.ref, record.commit) == (
        "git",
        "https://git.example.org/team/calc.git",
        "v1",
        "",
    )
    assert record.run.prompt == "Import https://git.example.org/team/calc.git at v1"


def test_an_upload_past_the_limit_is_refused_and_nothing_is_stored(
    api_client, project, settings, tmp_path
):
    settings.REPOSITORY_IMPORT_MAX_UPLOAD_BYTES = 1000

    response = post_archive(api_client, project, b"\x1f\x8b" + b"x" * 5000)

    assert response.status_code == 413
    assert response.json()["code"] == "archive_too_large"
    assert "1000 bytes" in response.json()["detail"]
    assert uploads(tmp_path) == []
    assert not Run.objects.exists()


def test_an_upload_that_is_no_archive_is_refused(api_client, project, tmp_path):
    response = post_archive(api_client, project, b"just some text\n", name="notes.txt")

    assert response.status_code == 400
    assert response.json() == {
        "detail": "notes.txt is not a .zip or .tar.gz archive.",
        "code": "bad_archive",
    }
    assert uploads(tmp_path) == []


@pytest.mark.parametrize(
    ("url", "said"),
    [
        ("file:///srv/git/calc.git", "file:// remotes are not allowed (REPOSITORY_ALLOW_LOCAL"),
        ("https://127.0.0.1/calc.git", "127.0.0.1 is a loopback address, which is not allowed."),
        ("https://169.254.169.254/latest.git", "169.254.169.254 is a link-local address"),
        ("https://user:secret@github.com/a/b.git", "A URL may not carry credentials"),
        ("/srv/git/calc.git", "Give the remote as a URL"),
        ("git@github.com:a/b.git", "Give the remote as a URL"),
    ],
)
def test_a_source_the_policy_does_not_allow_is_refused_with_its_reason(
    api_client, project, settings, url, said
):
    settings.REPOSITORY_ALLOWED_HOSTS = ["*"]  # the address rules alone refuse these

    response = post_git(api_client, project, url=url)

    assert response.status_code == 400
    assert response.json()["code"] == "outbound_refused"
    assert response.json()["detail"].startswith(said)
    assert not Run.objects.exists()


def test_a_ref_that_could_be_an_option_is_refused(api_client, project, settings):
    settings.REPOSITORY_ALLOWED_HOSTS = ["git.example.org"]

    response = post_git(
        api_client, project, url="https://git.example.org/a.git", ref="--upload-pack=x"
    )

    assert response.status_code == 400
    assert response.json()["code"] == "bad_ref"


def test_neither_or_both_sources_are_refused(api_client, project):
    response = api_client.post(f"/projects/{project.id}/import", {}, format="json")

    assert response.status_code == 400
    assert response.json()["code"] == "invalid_source"


def test_another_users_project_is_not_found(api_client, other_user):
    theirs = ProjectFactory(owner=other_user)

    response = post_archive(api_client, theirs, tar_gz(CALC_FILES))

    assert response.status_code == 404
    assert not Run.objects.exists()


# --- GET /projects/{id}/baseline ------------------------------------------------------------


def imported(project: Any, *, status: str = "completed", tests: dict[str, str]) -> Run:
    from pipeline.models import BaselineTest

    run = Run.objects.create(project=project, kind="import", prompt="Import x", status=status)
    RunImport.objects.create(
        run=run,
        source="archive",
        archive_name="x.zip",
        baseline_status="failed",
        baseline_command="python -m pytest",
        baseline_reason="pytest: 1 test module(s)",
        baseline_counts={"passed": 1, "failed": 1, "errors": 0, "skipped": 0},
    )
    for test_id, outcome in tests.items():
        BaselineTest.objects.create(run=run, test_id=test_id, outcome=outcome)
    return run


def test_the_baseline_lists_each_test_of_the_import_with_its_outcome(api_client, project):
    imported(project, tests={"t.py::test_old": "passed"})
    run = imported(project, tests={"t.py::test_b": "failed", "t.py::test_a": "passed"})

    response = api_client.get(f"/projects/{project.id}/baseline")

    assert response.status_code == 200
    assert response.json() == {
        "run": run.id,
        "run_status": "completed",
        "command": "python -m pytest",
        "status": "failed",
        "reason": "pytest: 1 test module(s)",
        "counts": {"passed": 1, "failed": 1, "errors": 0, "skipped": 0},
        "tests": [
            {"id": "t.py::test_a", "outcome": "passed"},
            {"id": "t.py::test_b", "outcome": "failed"},
        ],
    }


def test_the_baseline_is_the_one_the_latest_completed_run_descends_from(api_client, project):
    first = imported(project, tests={"t.py::test_first": "passed"})
    Run.objects.create(project=project, prompt="change", status="completed", base_run=first)
    imported(project, status="running", tests={})

    response = api_client.get(f"/projects/{project.id}/baseline")

    assert response.json()["run"] == first.id


def test_a_project_without_an_import_has_no_baseline(api_client, project):
    response = api_client.get(f"/projects/{project.id}/baseline")

    assert response.status_code == 404
    assert response.json()["code"] == "no_import"


def test_another_users_baseline_is_not_found(api_client, other_user):
    theirs = ProjectFactory(owner=other_user)
    imported(theirs, tests={"t.py::test_a": "passed"})

    response = api_client.get(f"/projects/{theirs.id}/baseline")

    assert response.status_code == 404
    assert response.json()["code"] == "not_found"


# --- the upload limit, as the body is parsed --------------------------------------------------


def multipart(data: bytes, boundary: str = "aiflowboundary") -> tuple[dict[str, str], bytes]:
    body = (
        (
            f"--{boundary}\r\n"
            'Content-Disposition: form-data; name="archive"; filename="big.zip"\r\n'
            "Content-Type: application/zip\r\n\r\n"
        ).encode()
        + data
        + f"\r\n--{boundary}--\r\n".encode()
    )
    meta = {
        "CONTENT_TYPE": f"multipart/form-data; boundary={boundary}",
        "CONTENT_LENGTH": str(len(body)),
    }
    return meta, body


class Recorder:
    """An upload handler after the limit's: what it was handed is what would be stored."""

    def __init__(self) -> None:
        from django.core.files.uploadhandler import MemoryFileUploadHandler

        self.inner = MemoryFileUploadHandler()
        self.received = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def receive_data_chunk(self, raw_data: bytes, start: int) -> bytes | None:
        self.received += len(raw_data)
        return self.inner.receive_data_chunk(raw_data, start)


@pytest.mark.parametrize("size", [5_000, 200_000])
def test_a_body_past_the_upload_limit_stops_before_the_rest_is_kept(settings, size):
    from django.http.multipartparser import MultiPartParser

    from pipeline.services.imports import UploadLimitHandler, UploadTooLarge

    settings.REPOSITORY_IMPORT_MAX_UPLOAD_BYTES = 1_000
    meta, body = multipart(b"PK" * (size // 2))
    recorder = Recorder()

    with pytest.raises(UploadTooLarge):
        MultiPartParser(meta, io.BytesIO(body), [UploadLimitHandler(), recorder]).parse()

    assert recorder.received <= 1_000
