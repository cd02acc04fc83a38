"""Artifacts: the files a run produced, stored content-addressed, read back, zipped, diffed.

Each run keeps its own tree (one ``Artifact`` row per ``(run, path)``); the bytes live once
per sha256 in the ``artifacts`` storage (``projects.storage``), shared by every row and run
with that content.

Layering: ``projects`` does not import ``pipeline``. The caller that wants progress events
for stored files (the pipeline's finalize) passes ``on_written``.
"""

from __future__ import annotations

import difflib
import io
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import IO, TYPE_CHECKING, Any

from django.conf import settings
from django.db import transaction
from django.db.models import Exists, OuterRef, QuerySet

from common.content import is_binary
from common.errors import ApplicationError, NotFound
from common.logging import get_logger

from .models import Artifact, Project
from .storage import blob_get, blob_put

if TYPE_CHECKING:
    from pipeline.models import Run

logger = get_logger(__name__)

MAX_PATH_LENGTH = 500
# A fixed timestamp makes the zip of one tree byte-for-byte reproducible.
_ZIP_DATE_TIME = (1980, 1, 1, 0, 0, 0)


class InvalidArtifactPath(ApplicationError):
    """A path that would leave the project's tree (absolute, ``..``) or is not a file path."""

    code = "invalid_path"


def artifact_path_normalize(path: str) -> str:
    """A safe relative POSIX path for ``path``, or ``InvalidArtifactPath``.

    ``./a//b`` becomes ``a/b``; absolute paths, ``..`` segments, backslashes, NUL bytes and
    empty paths are refused, so no stored path can point outside the tree when it is
    written to disk or into a zip.
    """
    if not isinstance(path, str) or not path or "\x00" in path or "\\" in path:
        raise InvalidArtifactPath(f"Invalid file path: {path!r}.")
    pure = PurePosixPath(path)
    if pure.is_absolute() or path.startswith("~"):
        raise InvalidArtifactPath(f"Absolute file paths are not allowed: {path!r}.")
    parts = [part for part in pure.parts if part not in ("", ".")]
    if not parts or any(part == ".." for part in parts):
        raise InvalidArtifactPath(f"File path leaves the project tree: {path!r}.")
    normalized = "/".join(parts)
    if len(normalized) > MAX_PATH_LENGTH:
        raise InvalidArtifactPath(f"File path longer than {MAX_PATH_LENGTH} characters.")
    return normalized


def _as_bytes(content: str | bytes) -> bytes:
    if isinstance(content, bytes):
        return content
    if isinstance(content, str):
        return content.encode("utf-8")
    raise TypeError(f"file content must be str or bytes, not {type(content).__name__}")


def artifact_store_tree(
    *,
    run: Run,
    files: dict[str, str | bytes],
    on_written: Callable[[list[Artifact]], None] | None = None,
    run_locked: bool = False,
) -> list[Artifact]:
    """Store ``files`` (path -> content) as the run's artifacts; return their rows by path.

    Idempotent: blobs are written once per sha256 (before any row points at them), rows are
    keyed by ``(run, path)``, and calling again with the same tree writes nothing and
    publishes nothing. A path stored again with different content is updated in place (the
    run's tree holds the latest content). Paths not in ``files`` are left alone, so a run's
    tree may be built in several calls. ``on_written`` is called once, inside the
    transaction, with the new and changed paths' rows in path order (the pipeline publishes
    their ``file.written`` events from it, in one statement). The rows are read in one
    statement and the new ones inserted in one, whatever the number of files.
    ``run_locked`` says the caller's transaction holds the run's row lock already: the tree
    is stored in that transaction, with no lock or savepoint of its own.
    """

    prepared: list[tuple[str, str, int, str, bool]] = []
    seen: set[str] = set()
    for raw_path, content in files.items():
        path = artifact_path_normalize(raw_path)
        if path in seen:
            raise InvalidArtifactPath(f"File path given twice after normalization: {path!r}.")
        seen.add(path)
        data = _as_bytes(content)
        sha, key = blob_put(data=data)
        prepared.append((path, sha, len(data), key, is_binary(data)))

    stored: list[Artifact] = []
    written: list[Artifact] = []
    with transaction.atomic(savepoint=not run_locked):
        # Lock the run row first: concurrent stores of one run (a re-delivered finalize, say)
        # then take turns instead of deadlocking between a row insert and publish's counter.
        if not run_locked:
            type(run).objects.select_for_update().filter(pk=run.pk).values_list("pk").first()
        prepared.sort()
        paths = [item[0] for item in prepared]
        existing = {
            artifact.path: artifact for artifact in Artifact.objects.filter(run=run, path__in=paths)
        }
        new = [
            Artifact(
                run=run,
                project_id=run.project_id,
                path=path,
                sha256=sha,
                size=size,
                storage_key=key,
                binary=binary,
            )
            for path, sha, size, key, binary in prepared
            if path not in existing
        ]
        created = {artifact.path: artifact for artifact in Artifact.objects.bulk_create(new)}
        for path, sha, size, key, binary in prepared:
            artifact = existing.get(path) or created[path]
            if path in created:
                written.append(artifact)
            elif artifact.sha256 != sha:
                # Locked re-read: two writers of one path must not interleave their updates.
                artifact = Artifact.objects.select_for_update().get(pk=artifact.pk)
                if artifact.sha256 != sha:
                    artifact.sha256, artifact.size, artifact.storage_key = sha, size, key
                    artifact.binary = binary
                    artifact.save(update_fields=["sha256", "size", "storage_key", "binary"])
                    written.append(artifact)
            stored.append(artifact)
        if written and on_written is not None:
            on_written(written)
    logger.info("artifact.tree_stored", run_id=run.pk, files=len(stored))
    return stored


def artifact_copy(
    *,
    run: Run,
    from_run: Run,
    binary: bool | None = None,
    exclude: set[str] | frozenset = frozenset(),
) -> list[Artifact]:
    """Put ``from_run``'s artifacts (only binary or only text ones when ``binary`` says so),
    less the paths in ``exclude``, in ``run``'s tree: new rows on the same blobs, nothing
    read or written in the storage. Idempotent: a path ``run`` already has is left alone."""
    rows = Artifact.objects.filter(run=from_run)
    if binary is not None:
        rows = rows.filter(binary=binary)
    have = set(Artifact.objects.filter(run=run).values_list("path", flat=True))
    copies = [
        Artifact(
            project_id=run.project_id,
            run=run,
            path=row.path,
            sha256=row.sha256,
            size=row.size,
            storage_key=row.storage_key,
            binary=row.binary,
        )
        for row in rows.order_by("path")
        if row.path not in exclude and row.path not in have
    ]
    return Artifact.objects.bulk_create(copies, ignore_conflicts=True)


def artifact_read(*, artifact: Artifact) -> bytes:
    """The content of ``artifact``."""
    return blob_get(key=artifact.storage_key)


def artifact_list_for_run(*, run: Run) -> QuerySet[Artifact]:
    """The run's artifacts, ordered by path."""
    return Artifact.objects.filter(run=run).order_by("path")


def artifact_tree_for_run(*, run: Run) -> dict[str, str]:
    """The run's tree: path -> sha256, ordered by path."""
    return dict(artifact_list_for_run(run=run).values_list("path", "sha256"))


def artifact_get(*, run: Run, path: str) -> Artifact:
    """The run's artifact at ``path`` (normalized), or ``NotFound``."""
    normalized = artifact_path_normalize(path)
    try:
        return Artifact.objects.get(run=run, path=normalized)
    except Artifact.DoesNotExist as exc:
        raise NotFound("File not found.") from exc


def artifact_run_for_project(*, project: Project, run_id: int | None = None) -> Run:
    """The run whose tree the file endpoints show.

    ``run_id`` picks one of the project's runs (another project's run is ``NotFound``);
    without it, the latest completed run that has artifacts.
    """
    runs = project.runs.all()  # the reverse relation: projects does not import pipeline
    if run_id is not None:
        try:
            return runs.get(id=run_id)
        except runs.model.DoesNotExist as exc:
            raise NotFound("Run not found.") from exc
    run = (
        runs.filter(status="completed")
        .filter(Exists(Artifact.objects.filter(run=OuterRef("pk"))))
        .order_by("-created_at", "-id")
        .first()
    )
    if run is None:
        raise NotFound("This project has no completed run with files yet.", code="no_files")
    return run


def artifact_zip_write(*, run: Run, fileobj: IO[bytes]) -> int:
    """Write the run's tree as a zip archive into ``fileobj``; return the number of files."""
    count = 0
    with zipfile.ZipFile(fileobj, mode="w", compression=zipfile.ZIP_DEFLATED) as archive:
        for artifact in artifact_list_for_run(run=run):
            info = zipfile.ZipInfo(artifact.path, date_time=_ZIP_DATE_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            archive.writestr(info, artifact_read(artifact=artifact))
            count += 1
    return count


def artifact_zip_bytes(*, run: Run) -> bytes:
    """The run's tree as the bytes of a zip archive."""
    buffer = io.BytesIO()
    artifact_zip_write(run=run, fileobj=buffer)
    return buffer.getvalue()


@dataclass
class TreeDiff:
    """What changed between two runs' trees."""

    from_run: int
    to_run: int
    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    unchanged: int = 0
    # path -> unified diff, for text files (UTF-8, no NUL) within the size limit.
    diffs: dict[str, str] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "from_run": self.from_run,
            "to_run": self.to_run,
            "added": self.added,
            "removed": self.removed,
            "changed": self.changed,
            "unchanged": self.unchanged,
            "diffs": self.diffs,
        }


def _text_or_none(data: bytes) -> str | None:
    if b"\x00" in data or len(data) > settings.ARTIFACTS_DIFF_MAX_BYTES:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


def _unified(path: str, old: bytes | None, new: bytes | None) -> str | None:
    old_text = "" if old is None else _text_or_none(old)
    new_text = "" if new is None else _text_or_none(new)
    if old_text is None or new_text is None:
        return None
    lines = difflib.unified_diff(
        old_text.splitlines(keepends=True),
        new_text.splitlines(keepends=True),
        fromfile="/dev/null" if old is None else f"a/{path}",
        tofile="/dev/null" if new is None else f"b/{path}",
    )
    # A last line without a newline would glue onto the next header; mark it like git.
    return "".join(
        line if line.endswith("\n") else line + "\n\\ No newline at end of file\n" for line in lines
    )


def artifact_tree_diff(*, from_run: Run, to_run: Run) -> TreeDiff:
    """Added, removed and changed paths from ``from_run``'s tree to ``to_run``'s.

    Unified diffs are included for text files (added and removed files diff against
    ``/dev/null``); binary or oversized files are listed without one.
    """
    old_rows = {a.path: a for a in artifact_list_for_run(run=from_run)}
    new_rows = {a.path: a for a in artifact_list_for_run(run=to_run)}
    diff = TreeDiff(from_run=from_run.pk, to_run=to_run.pk)
    for path in sorted(old_rows.keys() | new_rows.keys()):
        old, new = old_rows.get(path), new_rows.get(path)
        if old is not None and new is not None and old.sha256 == new.sha256:
            diff.unchanged += 1
            continue
        if old is None:
            diff.added.append(path)
        elif new is None:
            diff.removed.append(path)
        else:
            diff.changed.append(path)
        text = _unified(
            path,
            None if old is None else artifact_read(artifact=old),
            None if new is None else artifact_read(artifact=new),
        )
        if text is not None:
            diff.diffs[path] = text
    return diff
