"""Runs for delivery tests: an import run as the import records it, and completed runs with
their files, summary and test report, made from rows (no worker, no model).

``make_import_run`` is the one place that knows how an import run looks (its ``import``
step's ``source``); ``pipeline.delivery.selectors.run_import_source`` is the one place that
reads it.
"""

from decimal import Decimal
from typing import Any

from django.utils import timezone

from pipeline.models import Run, RunImport, Step
from projects.artifacts import artifact_store_tree


def _bytes(files: dict[str, Any]) -> dict[str, str | bytes]:
    return {path: data.encode() if isinstance(data, str) else data for path, data in files.items()}


def make_import_run(
    project: Any,
    files: dict[str, Any],
    *,
    kind: str = "git",
    url: str = "",
    ref: str = "",
    commit: str = "",
) -> Run:
    """A completed import of ``files`` from a git repository (``url`` at ``ref``, resolved to
    ``commit``) or an archive."""
    run = Run.objects.create(
        project=project,
        created_by=project.owner,
        kind=Run.Kind.IMPORT,
        prompt=f"Import {url or 'an archive'}",
        status=Run.Status.COMPLETED,
        finished_at=timezone.now(),
    )
    artifact_store_tree(run=run, files=_bytes(files))
    RunImport.objects.create(
        run=run,
        source=kind,
        url=url,
        ref=ref,
        commit=commit,
        archive_name="" if kind == "git" else "tree.tar.gz",
        baseline_status=RunImport.Baseline.NOT_RUN,
    )
    return run


def make_completed_run(
    project: Any,
    files: dict[str, Any],
    *,
    base_run: Run | None = None,
    prompt: str = "Say v2 instead of v1",
    summary: str = "app.py now says v2.",
) -> Run:
    """A completed run whose tree is ``files``, with an integrator summary and a green
    integration suite."""
    run = Run.objects.create(
        project=project,
        created_by=project.owner,
        prompt=prompt,
        status=Run.Status.COMPLETED,
        base_run=base_run,
        finished_at=timezone.now(),
        cost_usd=Decimal("0.0123"),
        tokens_in=1200,
        tokens_out=340,
    )
    artifact_store_tree(run=run, files=_bytes(files))
    Step.objects.create(
        run=run,
        role="integrator",
        key="integrate:integrator",
        status=Step.Status.SUCCEEDED,
        output={"summary": summary, "files": {}},
    )
    Step.objects.create(
        run=run,
        role="tester",
        key="integrate:suite:1",
        attempt=1,
        status=Step.Status.SUCCEEDED,
        output={
            "mode": "sandbox",
            "passed": True,
            "report": {"summary": "3 passed, 0 failed, 0 errors", "failures": []},
        },
    )
    return run
