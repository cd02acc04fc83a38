"""Artifact store: content addressing, idempotency, reads, zip and diff (local filesystem)."""

import functools
import io
import threading
import zipfile
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.db import connection

from common.errors import NotFound
from pipeline.events import publish_files_written
from pipeline.models import Event, Run
from projects.artifacts import (
    InvalidArtifactPath,
    artifact_path_normalize,
    artifact_read,
    artifact_run_for_project,
    artifact_store_tree,
    artifact_tree_diff,
    artifact_tree_for_run,
    artifact_zip_bytes,
)
from projects.models import Artifact
from projects.storage import sha256_hex

# As the pipeline stores a run's tree: with a file.written event per new or changed path.
store_tree = functools.partial(artifact_store_tree, on_written=publish_files_written)

pytestmark = pytest.mark.django_db

TREE: dict[str, str | bytes] = {
    "README.md": "# Demo\n",
    "app/main.py": "print('hello')\n",
    "app/data.bin": b"\x00\x01\x02binary",
}
TREE_BYTES = {
    "README.md": b"# Demo\n",
    "app/main.py": b"print('hello')\n",
    "app/data.bin": b"\x00\x01\x02binary",
}


@pytest.fixture
def run(project: Any) -> Run:
    return Run.objects.create(project=project, created_by=project.owner, prompt="p")


@pytest.fixture
def other_run(project: Any) -> Run:
    return Run.objects.create(project=project, created_by=project.owner, prompt="p2")


def _blob_files() -> list[Path]:
    root = Path(settings.MEDIA_ROOT) / "blobs"
    return sorted(p for p in root.rglob("*") if p.is_file())


@pytest.fixture(autouse=True)
def _empty_media(tmp_path: Path, settings: Any) -> None:
    settings.MEDIA_ROOT = str(tmp_path / "media")


def test_store_tree_writes_one_row_per_path_with_its_digest(run: Run) -> None:
    store_tree(run=run, files=TREE)

    rows = {a.path: (a.sha256, a.size) for a in Artifact.objects.filter(run=run)}
    assert rows == {
        "README.md": (sha256_hex(b"# Demo\n"), 7),
        "app/data.bin": (sha256_hex(TREE_BYTES["app/data.bin"]), len(TREE["app/data.bin"])),
        "app/main.py": (sha256_hex(b"print('hello')\n"), 15),
    }


def test_blobs_are_stored_under_their_content_address(run: Run) -> None:
    store_tree(run=run, files={"a.txt": "same"})
    sha = sha256_hex(b"same")

    blob = Path(settings.MEDIA_ROOT) / "blobs" / sha[:2] / sha

    assert blob.read_bytes() == b"same"


def test_storing_the_same_tree_twice_writes_no_duplicate_row_blob_or_event(run: Run) -> None:
    store_tree(run=run, files=TREE)
    before = (_blob_files(), Artifact.objects.count(), Event.objects.count())

    store_tree(run=run, files=TREE)

    assert (_blob_files(), Artifact.objects.count(), Event.objects.count()) == before


def test_identical_content_in_two_paths_and_two_runs_shares_one_blob(
    run: Run, other_run: Run
) -> None:
    store_tree(run=run, files={"a.txt": "same", "b.txt": "same"})
    store_tree(run=other_run, files={"c.txt": "same"})

    assert (len(_blob_files()), Artifact.objects.count()) == (1, 3)


def test_store_tree_publishes_file_written_per_new_path(run: Run) -> None:
    store_tree(run=run, files=TREE)

    events = list(Event.objects.filter(run=run).values_list("type", "payload"))
    assert events == [
        ("file.written", {"path": p, "sha256": sha256_hex(c), "size": len(c)})
        for p, c in sorted(TREE_BYTES.items())
    ]


def test_storing_a_path_again_with_new_content_updates_it(run: Run) -> None:
    store_tree(run=run, files={"a.txt": "v1"})

    store_tree(run=run, files={"a.txt": "v2"})

    artifact = Artifact.objects.get(run=run, path="a.txt")
    assert (artifact_read(artifact=artifact), Artifact.objects.filter(run=run).count()) == (
        b"v2",
        1,
    )


def test_read_returns_the_stored_bytes(run: Run) -> None:
    store_tree(run=run, files=TREE)

    contents = {a.path: artifact_read(artifact=a) for a in Artifact.objects.filter(run=run)}

    assert contents == TREE_BYTES


def test_tree_for_run_maps_paths_to_digests(run: Run) -> None:
    store_tree(run=run, files={"b.txt": "b", "a.txt": "a"})

    assert artifact_tree_for_run(run=run) == {"a.txt": sha256_hex(b"a"), "b.txt": sha256_hex(b"b")}


@pytest.mark.parametrize(
    "path", ["../etc/passwd", "/etc/passwd", "a/../../b", "a\\b", "", "./", "x\x00y", "~/x"]
)
def test_paths_leaving_the_tree_are_refused(path: str) -> None:
    with pytest.raises(InvalidArtifactPath):
        artifact_path_normalize(path)


def test_store_tree_refuses_a_traversing_path_and_stores_nothing(run: Run) -> None:
    with pytest.raises(InvalidArtifactPath):
        store_tree(run=run, files={"ok.txt": "x", "../evil.txt": "y"})

    assert Artifact.objects.count() == 0


def test_paths_are_normalized() -> None:
    assert artifact_path_normalize("./src//pkg/./mod.py") == "src/pkg/mod.py"


def test_zip_holds_every_file_of_the_run(run: Run) -> None:
    store_tree(run=run, files=TREE)

    with zipfile.ZipFile(io.BytesIO(artifact_zip_bytes(run=run))) as archive:
        contents = {name: archive.read(name) for name in archive.namelist()}

    assert contents == TREE_BYTES


def test_diff_lists_added_removed_and_changed_paths(run: Run, other_run: Run) -> None:
    store_tree(run=run, files={"same.txt": "s", "gone.txt": "g", "edit.txt": "one\n"})
    store_tree(run=other_run, files={"same.txt": "s", "new.txt": "n", "edit.txt": "two\n"})

    diff = artifact_tree_diff(from_run=run, to_run=other_run)

    assert (diff.added, diff.removed, diff.changed, diff.unchanged) == (
        ["new.txt"],
        ["gone.txt"],
        ["edit.txt"],
        1,
    )


def test_diff_of_a_changed_text_file_is_unified(run: Run, other_run: Run) -> None:
    store_tree(run=run, files={"edit.txt": "keep\none\n"})
    store_tree(run=other_run, files={"edit.txt": "keep\ntwo\n"})

    diff = artifact_tree_diff(from_run=run, to_run=other_run)

    assert diff.diffs["edit.txt"] == (
        "--- a/edit.txt\n+++ b/edit.txt\n@@ -1,2 +1,2 @@\n keep\n-one\n+two\n"
    )


def test_diff_lists_binary_files_without_a_text_diff(run: Run, other_run: Run) -> None:
    store_tree(run=run, files={"x.bin": b"\x00a"})
    store_tree(run=other_run, files={"x.bin": b"\x00b"})

    diff = artifact_tree_diff(from_run=run, to_run=other_run)

    assert (diff.changed, diff.diffs) == (["x.bin"], {})


def test_files_default_to_the_latest_completed_run_with_artifacts(
    project: Any, run: Run, other_run: Run
) -> None:
    store_tree(run=run, files={"a.txt": "a"})
    Run.objects.filter(pk=run.pk).update(status=Run.Status.COMPLETED)
    Run.objects.create(project=project, prompt="newer, completed, no files", status="completed")
    store_tree(run=other_run, files={"b.txt": "b"})  # newer but still running

    assert artifact_run_for_project(project=project) == run


def test_files_never_default_to_a_run_that_has_not_completed(project: Any, run: Run) -> None:
    store_tree(run=run, files={"a.txt": "a"})

    with pytest.raises(NotFound):
        artifact_run_for_project(project=project)


@pytest.mark.django_db(transaction=True)
def test_concurrent_stores_of_one_tree_write_each_row_and_event_once(run: Run) -> None:
    # Each thread's own path sorts before or after the shared ones, so the threads' inserts
    # interleave in both orders.
    own = ["0-only.txt", "zz-only.txt", "1-only.txt", "zz2-only.txt"]
    trees = [{**TREE, path: path} for path in own]
    errors: list[BaseException] = []

    def store(files: dict) -> None:
        try:
            store_tree(run=run, files=files)
        except BaseException as exc:  # collected: a thread's failure must fail the test
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=store, args=(tree,)) for tree in trees]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    paths = sorted(Artifact.objects.filter(run=run).values_list("path", flat=True))
    written = Event.objects.filter(run=run, type="file.written").count()
    assert (errors, paths, written) == (
        [],
        sorted([*TREE, *own]),
        len(TREE) + 4,
    )


def test_storing_without_a_callback_publishes_nothing(run: Run) -> None:
    artifact_store_tree(run=run, files=TREE)

    assert not Event.objects.filter(run=run).exists()
