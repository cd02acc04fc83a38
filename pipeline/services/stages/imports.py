"""An import run's two stages, on the sandbox worker: fetch the tree, then run its baseline.

``import_fetch`` (step ``import:fetch``) fetches the repository (``repositories.gitimport``)
or reads the uploaded archive (``repositories.archive``), every entry checked before it is
kept, and stores the tree as the run's artifacts (binary files flagged, never shown to a
model); the ``RunImport`` row records the commit, what was binary, executable, linked or
skipped. The upload is deleted once that step is stored (or once its archive is refused).
``import_baseline`` (step ``import:baseline``) runs the repository's own tests in the sandbox
(``pipeline.baseline``), stores one ``BaselineTest`` row per test in the transaction that
stores the step, and completes the run. Both are steps like any other: claimed, stored under
their key, answered from their row when run again; their progress is ``import.progress``.
"""

from __future__ import annotations

import shutil
import tempfile
from typing import Any

from django.db import transaction
from django.utils import timezone

from common.logging import get_logger

from ...models import BaselineTest, Run, RunImport, Step
from ..imports import upload_delete
from ..run_state import RunStopped, emit, run_check_bounds, stage_mark
from ..steps import StepLedger, StepSpec, step_run

logger = get_logger(__name__)

FETCH_STEP = "import:fetch"
BASELINE_STEP = "import:baseline"
SKIPPED_SHOWN = 100


def _progress(run_id: int, phase: str, detail: str, **extra: Any) -> None:
    emit(run_id=run_id, type="import.progress", payload={"phase": phase, "detail": detail, **extra})


def _credentials(project_id: int) -> Any:
    """What git may present for the project's repository: the forge connection's token (sent
    only to the forge's own hosts) and SSH key; none without a connection."""
    from repositories.delivery import forge_of
    from repositories.errors import DeliveryFailed
    from repositories.gitcmd import GitCredentials
    from repositories.models import ForgeConnection

    connection = ForgeConnection.objects.filter(project_id=project_id).first()
    if connection is None:
        return GitCredentials()
    try:
        forge = forge_of(connection)
    except DeliveryFailed:  # no token: maybe an SSH key
        return GitCredentials(ssh_private_key=connection.secret("ssh_key"))
    return GitCredentials(
        http_header=forge.git_http_header(),
        header_origins=forge.token_origins(),
        ssh_private_key=connection.secret("ssh_key"),
    )


def _read_archive(key: str) -> Any:
    """The uploaded archive as a seekable file (spooled to disk past a few megabytes)."""
    from common.errors import ApplicationError
    from projects.storage import artifact_storage

    storage = artifact_storage()
    if not key or not storage.exists(key):
        raise ApplicationError(
            "The uploaded archive is no longer there; upload it again.", code="upload_gone"
        )
    spooled = tempfile.SpooledTemporaryFile(max_size=8 * 1024 * 1024)  # noqa: SIM115
    with storage.open(key, "rb") as handle:
        shutil.copyfileobj(handle, spooled)
    spooled.seek(0)
    return spooled


def _fetch(run_id: int, project_id: int, record: dict[str, Any]) -> Any:
    """The ``ImportedTree`` of the run's source."""
    from repositories.archive import import_archive
    from repositories.errors import ImportRefused
    from repositories.gitimport import import_git

    if record["source"] == RunImport.Source.GIT:
        where = record["url"] + (f" at {record['ref']}" if record["ref"] else "")
        _progress(run_id, "fetching", f"Fetching {where}.")
        return import_git(
            record["url"],
            ref=record["ref"] or None,
            submodules=record["submodules"],
            credentials=_credentials(project_id),
        )
    _progress(run_id, "fetching", f"Reading the archive {record['archive_name']}.")
    archive = _read_archive(record["archive_key"])
    try:
        return import_archive(archive)
    except ImportRefused:
        # A refused archive never imports: it goes now, not after a retry.
        upload_delete(key=record["archive_key"])
        RunImport.objects.filter(run_id=run_id).update(archive_key="")
        raise
    finally:
        archive.close()


def import_fetch(*, run_id: int) -> None:
    """Fetch the run's source, check every entry, store the tree as the run's artifacts."""
    from projects.artifacts import artifact_store_tree

    run = run_check_bounds(run_id=run_id)
    stage_mark(
        run_id=run_id,
        stage="import",
        edge="started",
        status=Run.Status.RUNNING,
        from_statuses=(Run.Status.QUEUED,),
        started=True,
    )
    record = RunImport.objects.filter(run_id=run_id).values().first()
    if record is None:  # pragma: no cover - created with the run
        raise RunStopped(run_id)
    upload_key = record["archive_key"]

    def prepare(run: Run, step: Step) -> dict[str, Any]:
        return {"record": record, "project_id": run.project_id}

    def execute(prepared: dict[str, Any], ledger: StepLedger) -> dict[str, Any]:
        tree = _fetch(run_id, prepared["project_id"], prepared["record"])
        _progress(
            run_id,
            "fetched",
            f"{len(tree.files)} files, {tree.total_bytes} bytes"
            + (f" at commit {tree.commit[:12]}" if tree.commit else "")
            + ".",
            files=len(tree.files),
            bytes=tree.total_bytes,
        )
        artifact_store_tree(run=Run(id=run_id, project_id=prepared["project_id"]), files=tree.files)
        skipped = [{"path": s.path, "reason": s.reason} for s in tree.skipped]
        RunImport.objects.filter(run_id=run_id).update(
            commit=tree.commit or "",
            files=len(tree.files),
            bytes=tree.total_bytes,
            binary=sorted(tree.binary),
            executable=sorted(tree.executable),
            symlinks=dict(sorted(tree.symlinks.items())),
            skipped=skipped,
            imported_at=timezone.now(),
        )
        return {
            "source": prepared["record"]["source"],
            "url": prepared["record"]["url"],
            "ref": prepared["record"]["ref"],
            "commit": tree.commit or "",
            "files": len(tree.files),
            "bytes": tree.total_bytes,
            "binary": len(tree.binary),
            "symlinks": len(tree.symlinks),
            "skipped": skipped[:SKIPPED_SHOWN],
        }

    def events(output: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
        detail = f"Stored {output['files']} files ({output['binary']} binary, never shown to a "
        detail += "model)" + (f"; skipped {len(output['skipped'])}." if output["skipped"] else ".")
        return [("import.progress", {"phase": "stored", "detail": detail, **output})]

    def on_success(step: Step, output: dict[str, Any]) -> None:
        if upload_key:
            RunImport.objects.filter(run_id=run_id).update(archive_key="")
            transaction.on_commit(lambda: upload_delete(key=upload_key))

    step_run(
        run_id=run_id,
        spec=StepSpec(role="importer", key=FETCH_STEP, input={"source": record["source"]}),
        prepare=prepare,
        execute=execute,
        events=events,
        on_success=on_success,
        run=run,
    )
    stage_mark(run_id=run_id, stage="import", edge="completed")


def _tree_files(run_id: int) -> dict[str, str | bytes]:
    """The import's tree as the sandbox gets it: text decoded, binary files as bytes."""
    from projects.artifacts import artifact_read
    from projects.models import Artifact

    files: dict[str, str | bytes] = {}
    for artifact in Artifact.objects.filter(run_id=run_id).order_by("path"):
        data = artifact_read(artifact=artifact)
        files[artifact.path] = data if artifact.binary else data.decode("utf-8")
    return files


def import_baseline(*, run_id: int) -> None:
    """Run the imported tree's own tests in the sandbox; store each result; complete the run."""
    from ...baseline import baseline_run

    run = run_check_bounds(run_id=run_id)
    stage_mark(run_id=run_id, stage="baseline", edge="started")

    def prepare(run: Run, step: Step) -> dict[str, Any]:
        return {"files": _tree_files(run_id)}

    def execute(prepared: dict[str, Any], ledger: StepLedger) -> dict[str, Any]:
        _progress(run_id, "baseline", "Running the repository's own tests in the sandbox.")
        return baseline_run(prepared["files"])

    def events(output: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
        counts = output.get("counts") or {}
        if output["status"] == "not_run":
            detail = f"Baseline not run: {output['reason']}"
        else:
            detail = (
                f"Baseline {output['status']}: {counts.get('passed', 0)} passed, "
                f"{counts.get('failed', 0)} failed, {counts.get('errors', 0)} errors "
                f"({output['command']})."
            )
        payload = {
            "phase": "baseline_done",
            "detail": detail,
            "status": output["status"],
            "command": output["command"],
            "counts": counts,
        }
        return [("import.progress", payload)]

    def on_success(step: Step, output: dict[str, Any]) -> None:
        baseline_store(run_id=run_id, output=output)

    step_run(
        run_id=run_id,
        spec=StepSpec(role="tester", key=BASELINE_STEP),
        prepare=prepare,
        execute=execute,
        events=events,
        on_success=on_success,
        run=run,
    )
    import_complete(run_id=run_id)


def baseline_store(*, run_id: int, output: dict[str, Any]) -> None:
    """The baseline's rows: one per test, and its status, command and counts on the import."""
    BaselineTest.objects.filter(run_id=run_id).delete()
    BaselineTest.objects.bulk_create(
        [
            BaselineTest(run_id=run_id, test_id=test["id"], outcome=test["outcome"])
            for test in output.get("tests") or []
        ],
        ignore_conflicts=True,
        batch_size=1000,
    )
    RunImport.objects.filter(run_id=run_id).update(
        baseline_status=output["status"],
        baseline_command=output.get("command", "")[:500],
        baseline_reason=output.get("reason", ""),
        baseline_counts=output.get("counts") or {},
    )


def import_complete(*, run_id: int) -> None:
    """The import is done: the run completes (its final event), its tree a base from now."""
    from projects.models import Artifact

    with transaction.atomic():
        stage_mark(run_id=run_id, stage="baseline", edge="completed")
        completed = Run.objects.filter(id=run_id, status__in=Run.ACTIVE).update(
            status=Run.Status.COMPLETED, finished_at=timezone.now(), heartbeat_at=timezone.now()
        )
        if not completed:
            return
        run = Run.objects.get(id=run_id)
        record = RunImport.objects.get(run_id=run_id)
        emit(
            run_id=run_id,
            type="run.completed",
            payload={
                "kind": Run.Kind.IMPORT,
                "artifacts": Artifact.objects.filter(run_id=run_id).count(),
                "commit": record.commit,
                "baseline": record.baseline_status,
                "files_url": f"/projects/{run.project_id}/files?run={run_id}",
                "download_url": f"/projects/{run.project_id}/download?run={run_id}",
                "baseline_url": f"/projects/{run.project_id}/baseline",
                "tokens_in": 0,
                "tokens_out": 0,
                "cost_usd": "0",
            },
        )
    logger.info("import.completed", run_id=run_id)
