"""Import runs on a real worker: from a file:// repository, from a git server over smart HTTP
(``git http-backend``), and from an uploaded archive; a hostile archive refused with its
reason; the import the base of the project's next run."""

import io
import zipfile
from pathlib import Path
from typing import Any

import pytest

from pipeline.models import BaselineTest, Event, Run, RunImport, Step
from projects.models import Artifact
from tests.git_server import GitHttpServer, git, make_bare
from tests.pipeline.conftest import wait_for_run
from tests.pipeline.repo_fixtures import BASELINE_TESTS, CALC_FILES, LOGO, calc_repository, tar_gz

pytestmark = [pytest.mark.slow, pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


@pytest.fixture(autouse=True)
def _media(tmp_path: Path, settings: Any) -> None:
    settings.MEDIA_ROOT = str(tmp_path / "media")


@pytest.fixture
def local_git(settings: Any) -> None:
    settings.REPOSITORY_ALLOW_LOCAL = True
    settings.REPOSITORY_ALLOWED_HOSTS = ["127.0.0.1", "localhost"]


def start_import(client: Any, project: Any, **body: Any) -> Run:
    response = client.post(f"/projects/{project.id}/import", body, format="json")
    assert response.status_code == 202, response.json()
    return wait_for_run(response.json()["run_id"], timeout=240)


def tree_of(run: Run) -> dict[str, bytes]:
    from projects.artifacts import artifact_read

    return {a.path: artifact_read(artifact=a) for a in Artifact.objects.filter(run=run)}


def test_an_import_from_a_file_repository_stores_the_tree_and_its_baseline(
    celery_worker, api_client, project, tmp_path, local_git
):
    commit = calc_repository(tmp_path / "calc")

    run = start_import(api_client, project, git={"url": f"file://{tmp_path / 'calc'}"})

    assert (run.status, run.error, run.kind) == ("completed", "", "import")
    expected = {p: c.encode() if isinstance(c, str) else c for p, c in CALC_FILES.items()}
    assert tree_of(run) == expected
    assert set(Artifact.objects.filter(run=run, binary=True).values_list("path", flat=True)) == {
        "assets/logo.png"
    }
    record = RunImport.objects.get(run=run)
    assert (record.commit, record.files, record.binary) == (commit, 6, ["assets/logo.png"])
    assert (record.baseline_status, record.baseline_command) == ("passed", "python -m pytest")
    assert dict(BaselineTest.objects.filter(run=run).values_list("test_id", "outcome")) == (
        BASELINE_TESTS
    )
    phases = [e.payload["phase"] for e in Event.objects.filter(run=run, type="import.progress")]
    assert phases == ["fetching", "fetched", "stored", "baseline", "baseline_done"]
    assert Event.objects.filter(run=run).order_by("-seq").first().type == "run.completed"
    steps = dict(Step.objects.filter(run=run).values_list("key", "status"))
    assert steps == {"import:fetch": "succeeded", "import:baseline": "succeeded"}
    baseline = api_client.get(f"/projects/{project.id}/baseline").json()
    assert (baseline["run"], baseline["status"], baseline["command"]) == (
        run.id,
        "passed",
        "python -m pytest",
    )
    assert baseline["tests"] == [{"id": k, "outcome": v} for k, v in sorted(BASELINE_TESTS.items())]


def test_an_import_over_smart_http_takes_the_commit_of_the_ref(
    celery_worker, api_client, project, tmp_path, local_git
):
    source = tmp_path / "work"
    first = calc_repository(source)
    (source / "calc" / "ops.py").write_text("def add(a, b):\n    return a + b\n")
    git("commit", "-qam", "second", cwd=source)
    git("branch", "old", first, cwd=source)
    make_bare(tmp_path / "srv", "calc.git", source)

    with GitHttpServer(tmp_path / "srv") as server:
        run = start_import(api_client, project, git={"url": f"{server.url}/calc.git", "ref": "old"})

    assert (run.status, run.error) == ("completed", "")
    record = RunImport.objects.get(run=run)
    assert (record.url, record.ref, record.commit) == (f"{server.url}/calc.git", "old", first)
    assert tree_of(run)["calc/ops.py"] == CALC_FILES["calc/ops.py"].encode()
    detail = api_client.get(f"/runs/{run.id}").json()
    assert detail["import_source"]["commit"] == first
    assert detail["import_source"]["baseline"]["status"] == "passed"


def test_an_uploaded_archive_is_imported_and_then_deleted(
    celery_worker, api_client, project, tmp_path, no_sandbox
):
    upload = io.BytesIO(tar_gz(CALC_FILES))
    upload.name = "calc-main.tar.gz"

    response = api_client.post(
        f"/projects/{project.id}/import", {"archive": upload}, format="multipart"
    )
    run = wait_for_run(response.json()["run_id"], timeout=120)

    assert (run.status, run.error) == ("completed", "")
    assert tree_of(run)["assets/logo.png"] == LOGO
    record = RunImport.objects.get(run=run)
    assert (record.archive_key, record.commit) == ("", "")
    assert list((tmp_path / "media" / "imports").iterdir()) == []
    assert (record.baseline_status, record.baseline_command) == ("not_run", "python -m pytest")
    assert record.baseline_reason == (
        "The sandbox is off (SANDBOX_TESTS_ENABLED=false): no code runs."
    )


def test_a_hostile_archive_fails_the_import_with_its_reason_and_writes_nothing_outside(
    celery_worker, api_client, project, tmp_path, no_sandbox
):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as bundle:
        bundle.writestr("calc/ok.py", "X = 1\n")
        bundle.writestr("../../../../escaped.py", "print('out')\n")
    upload = io.BytesIO(buffer.getvalue())
    upload.name = "evil.zip"
    before = {p.relative_to(tmp_path) for p in tmp_path.rglob("*")}

    response = api_client.post(
        f"/projects/{project.id}/import", {"archive": upload}, format="multipart"
    )
    assert response.status_code == 202
    run = wait_for_run(response.json()["run_id"], timeout=120)

    assert (run.status, run.error_code) == ("failed", "path_outside")
    assert run.error == "../../../../escaped.py: a path that leaves the tree (..)."
    assert not Artifact.objects.filter(run=run).exists()
    after = {p.relative_to(tmp_path) for p in tmp_path.rglob("*")}
    assert {p for p in after - before if "escaped" in p.name} == set()
    assert list((tmp_path / "media" / "imports").iterdir()) == []
    detail = api_client.get(f"/runs/{run.id}").json()
    assert (detail["status"], detail["error_code"]) == ("failed", "path_outside")


def test_the_projects_next_run_takes_the_import_as_its_base(
    celery_worker, api_client, project, tmp_path, local_git, no_sandbox
):
    calc_repository(tmp_path / "calc")
    imported = start_import(api_client, project, git={"url": f"file://{tmp_path / 'calc'}"})

    response = api_client.post(
        f"/projects/{project.id}/generate", {"prompt": "Add subtraction"}, format="json"
    )

    assert response.status_code == 202
    follow_up = Run.objects.get(id=response.json()["run_id"])
    assert (follow_up.kind, follow_up.base_run_id) == ("generate", imported.id)
    api_client.post(f"/runs/{follow_up.id}/cancel")


def test_a_resumed_import_answers_its_fetch_from_the_stored_step(
    celery_worker, api_client, project, tmp_path, local_git, monkeypatch
):
    import pipeline.baseline

    calc_repository(tmp_path / "work")
    make_bare(tmp_path / "srv", "calc.git", tmp_path / "work")
    real_baseline = pipeline.baseline.baseline_run

    def broken(files):
        raise RuntimeError("the sandbox host went away")

    monkeypatch.setattr(pipeline.baseline, "baseline_run", broken)
    with GitHttpServer(tmp_path / "srv") as server:
        failed = start_import(api_client, project, git={"url": f"{server.url}/calc.git"})
        assert (failed.status, failed.error_code) == ("failed", "internal")
        fetched = Step.objects.get(run=failed, key="import:fetch")
        monkeypatch.setattr(pipeline.baseline, "baseline_run", real_baseline)

        response = api_client.post(f"/runs/{failed.id}/resume")
        run = wait_for_run(failed.id, lambda r: r.status == "completed", timeout=240)

        fetches = [r for r in server.requests if r.path.endswith("/info/refs")]
    assert len(fetches) == 1
    assert response.status_code == 202
    again = Step.objects.get(run=run, key="import:fetch")
    assert (again.status, again.finished_at) == ("succeeded", fetched.finished_at)
    assert Step.objects.get(run=run, key="import:baseline").status == "succeeded"
    assert dict(BaselineTest.objects.filter(run=run).values_list("test_id", "outcome")) == (
        BASELINE_TESTS
    )
    assert Artifact.objects.filter(run=run).count() == len(CALC_FILES)
