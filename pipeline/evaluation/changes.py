"""Change cases of an evaluation: a repository imported first, then a run that changes it.

The case's ``repo/`` goes in as an uploaded .tar.gz through the same import every user's goes
through (``run_import_start``: fetch, checks, baseline in the sandbox); the change is an
ordinary run whose base is that import. Besides the hidden tests, a change is measured by the
baseline tests it broke (``pipeline.regressions``: those still failing in the run's latest
checks) and the lines it changed (added plus removed, over the text files of both trees).
"""

from __future__ import annotations

import difflib
import io
import tarfile
from typing import Any

from projects.artifacts import artifact_list_for_run, artifact_read

from ..models import Run, RunImport
from ..regressions import run_regressions
from .suites import Case


def archive_of(case: Case) -> bytes:
    """The case's repository as a .tar.gz (fixed times and modes: the same bytes each time)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as bundle:
        for path, data in sorted(case.repo.items()):
            info = tarfile.TarInfo(path)
            info.size, info.mode, info.mtime = len(data), 0o644, 0
            bundle.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def change_import_start(*, project: Any, user: Any, case: Case) -> Run:
    """Import the case's repository into ``project`` (an import run, queued)."""
    from ..services.imports import run_import_start

    return run_import_start(
        project=project,
        user=user,
        archive=io.BytesIO(archive_of(case)),
        archive_name=f"{case.name}.tar.gz",
    )


def _texts(run: Run) -> dict[str, list[str]]:
    texts = {}
    for artifact in artifact_list_for_run(run=run):
        if artifact.binary:
            continue
        texts[artifact.path] = artifact_read(artifact=artifact).decode("utf-8").splitlines()
    return texts


def lines_changed(*, before: Run, after: Run) -> int:
    """Lines added plus lines removed from ``before``'s text files to ``after``'s."""
    old, new = _texts(before), _texts(after)
    changed = 0
    for path in sorted(old.keys() | new.keys()):
        for line in difflib.unified_diff(old.get(path, []), new.get(path, []), lineterm="", n=0):
            if line.startswith(("+++", "---", "@@")):
                continue
            changed += line[:1] in ("+", "-")
    return changed


def change_figures(*, run: Run, imported: Run) -> dict[str, Any]:
    """``{baseline_passed, regressions, lines_changed}`` of a change run on ``imported``."""
    record = RunImport.objects.get(run=imported)
    counts = record.baseline_counts or {}
    regressions = run_regressions(run=run)["regressions"]
    changed = (
        lines_changed(before=imported, after=run) if run.status == Run.Status.COMPLETED else None
    )
    return {
        "baseline_passed": int(counts.get("passed") or 0),
        "regressions": regressions,
        "lines_changed": changed,
    }
