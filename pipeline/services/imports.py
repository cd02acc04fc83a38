"""Import runs: a project's tree fetched from git or an uploaded archive.

``run_import_start`` is what ``POST /projects/{id}/import``, the dashboard's Import form and
``manage.py import`` call. It checks what can be checked at once (the URL and ref of a git
source, the size and kind of an upload), stores an uploaded archive in the artifacts storage
before anything is queued (the sandbox worker may be on another host), and creates a run of
kind ``import`` with its ``RunImport`` row in one transaction; the canvas (fetch, then the
baseline: ``pipeline.services.stages.imports``) is queued once that commits.

The run's tree becomes the base of the project's next run exactly as a finished run's does:
``run_generate`` picks the latest completed run, and a completed import is one.
"""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import IO, Any

from django.conf import settings
from django.core.files import File
from django.core.files.uploadhandler import FileUploadHandler
from django.db import transaction
from django.utils import timezone

from common.errors import ApplicationError
from common.logging import get_logger, get_request_id
from projects.storage import artifact_storage

from ..canvas import canvas_dispatch
from ..events import publish
from ..flow import IMPORT
from ..models import Run, RunImport

logger = get_logger(__name__)

UPLOAD_PREFIX = "imports"
ARCHIVE_SUFFIXES = (".zip", ".tar.gz", ".tgz")
# Magic bytes: a zip's local header (or the end record of an empty zip), gzip's header.
_ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")
_GZIP_MAGIC = b"\x1f\x8b"
# A multipart body holds the file plus its headers and the other fields.
MULTIPART_OVERHEAD_BYTES = 64 * 1024


class UploadTooLarge(ApplicationError):
    """An uploaded archive larger than ``REPOSITORY_IMPORT_MAX_UPLOAD_BYTES``."""

    status_code = 413
    code = "archive_too_large"


def upload_limit() -> int:
    return int(settings.REPOSITORY_IMPORT_MAX_UPLOAD_BYTES)


def upload_too_large() -> UploadTooLarge:
    limit = upload_limit()
    return UploadTooLarge(
        f"The archive is larger than the {limit} bytes an upload may have "
        "(REPOSITORY_IMPORT_MAX_UPLOAD_BYTES).",
        extra={"max_bytes": limit},
    )


class UploadLimitHandler(FileUploadHandler):
    """Refuses a request whose body (or one uploaded file) passes the upload limit, as the
    multipart parser reads it: put first in ``request.upload_handlers``, before the body is
    parsed. A declared ``Content-Length`` over the limit is refused before any part is read."""

    def handle_raw_input(
        self,
        input_data: Any,
        META: dict[str, Any],  # noqa: N803 - Django's name
        content_length: int,
        boundary: Any,
        encoding: str | None = None,
    ) -> None:
        if content_length > upload_limit() + MULTIPART_OVERHEAD_BYTES:
            raise upload_too_large()
        self.received = 0

    def receive_data_chunk(self, raw_data: bytes, start: int) -> bytes:
        if start + len(raw_data) > upload_limit():
            raise upload_too_large()
        return raw_data

    def file_complete(self, file_size: int) -> None:
        return None


def upload_handlers_install(request: Any) -> None:
    """Put ``UploadLimitHandler`` first on ``request`` (a Django request not yet parsed)."""
    request.upload_handlers.insert(0, UploadLimitHandler(request))


def _archive_check(archive: IO[bytes], name: str, size: int) -> None:
    """A .zip or .tar.gz within the upload limit, judged by its size and first bytes."""
    if size > upload_limit():
        raise upload_too_large()
    if size == 0:
        raise ApplicationError("The archive is empty.", code="bad_archive")
    archive.seek(0)
    head = archive.read(4)
    archive.seek(0)
    if not (head.startswith(_GZIP_MAGIC) or head in _ZIP_MAGIC):
        raise ApplicationError(
            f"{name or 'The upload'} is not a .zip or .tar.gz archive.", code="bad_archive"
        )


def _git_check(git: dict[str, Any]) -> dict[str, Any]:
    """The git source with its URL and ref checked (``OutboundRefused``, ``ImportRefused``)."""
    from repositories.gitimport import check_import_url, check_ref

    url = check_import_url(str(git.get("url") or ""))
    raw_ref = str(git.get("ref") or "").strip()
    ref = check_ref(raw_ref) if raw_ref else ""
    return {"url": url, "ref": ref, "submodules": bool(git.get("submodules"))}


def _upload_store(archive: IO[bytes]) -> str:
    """Store the uploaded archive where every worker can read it; its storage key."""
    key = f"{UPLOAD_PREFIX}/{uuid.uuid4().hex}.archive"
    archive.seek(0)
    saved = artifact_storage().save(key, File(archive))
    return str(saved)


def upload_delete(*, key: str) -> None:
    """Delete an uploaded archive (once its import read it, or refused it)."""
    if not key:
        return
    try:
        artifact_storage().delete(key)
    except Exception:  # the import goes on; the key is logged for the operator
        logger.warning("import.upload_delete_failed", key=key, exc_info=True)


def _prompt_for(source: dict[str, Any]) -> str:
    if source["source"] == RunImport.Source.GIT:
        at = f" at {source['ref']}" if source["ref"] else ""
        return f"Import {source['url']}{at}"
    return f"Import the archive {source['archive_name'] or '(unnamed)'}"


def run_import_start(
    *,
    project: Any,
    user: Any,
    git: dict[str, Any] | None = None,
    archive: IO[bytes] | None = None,
    archive_name: str = "",
) -> Run:
    """Start an import run of ``project`` from ``git`` (``{url, ref?, submodules?}``) or an
    uploaded ``archive`` (a .zip or .tar.gz file object named ``archive_name``).

    Refusals are plain 400s (``ApplicationError``): neither or both sources, a URL the
    outbound policy does not allow (``file://`` and local addresses only with
    ``REPOSITORY_ALLOW_LOCAL``), a ref that is no branch, tag or commit id, an upload that
    is no archive; 413 for an upload past ``REPOSITORY_IMPORT_MAX_UPLOAD_BYTES``. What needs
    the content (every entry's path, kind and size) is checked by the import itself.
    """
    if (git is None) == (archive is None):
        raise ApplicationError(
            "Give either a git source ({url, ref?}) or an archive to upload, not both.",
            code="invalid_source",
        )
    if git is not None:
        source: dict[str, Any] = {"source": RunImport.Source.GIT, **_git_check(git)}
        source.update(archive_name="", archive_key="", archive_bytes=0)
    else:
        assert archive is not None  # noqa: S101 - narrowed by the check above
        size = archive.seek(0, 2)
        name = (archive_name or "").rsplit("/", 1)[-1][:255]
        _archive_check(archive, name, size)
        source = {
            "source": RunImport.Source.ARCHIVE,
            "url": "",
            "ref": "",
            "submodules": False,
            "archive_name": name,
            "archive_bytes": size,
            "archive_key": _upload_store(archive),
        }
    try:
        with transaction.atomic():
            run = Run.objects.create(
                project=project,
                created_by=user,
                kind=Run.Kind.IMPORT,
                prompt=_prompt_for(source),
                options={},
                deadline_at=timezone.now() + timedelta(seconds=settings.PIPELINE_MAX_WALL_SECONDS),
                heartbeat_at=timezone.now(),
                request_id=get_request_id() or "",
            )
            RunImport.objects.create(run=run, **source)
            publish(
                run_id=run.id,
                type="run.started",
                payload={
                    "kind": Run.Kind.IMPORT,
                    "source": source["source"],
                    "url": source["url"],
                    "ref": source["ref"],
                    "archive": source["archive_name"],
                },
            )
            transaction.on_commit(lambda: canvas_dispatch(run_id=run.id, start=IMPORT))
    except BaseException:
        upload_delete(key=source.get("archive_key", ""))
        raise
    logger.info("import.created", run_id=run.id, project_id=project.pk, source=source["source"])
    return run
