"""``manage.py import PROJECT (--git URL [--ref REF] | --archive FILE)``: import a repository's
tree into a project as an import run, and follow it to the end (fetch, checks, baseline).

The import is the base of the project's next run (``manage.py generate PROJECT "prompt"``).
Exit status: 0 when the import completed, 1 when it failed (a refused entry, an unreachable
remote: the reason is printed), 2 when it was cancelled, 3 when ``--timeout`` passed first,
130 on Ctrl-C (the import goes on without the terminal).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from common.errors import ApplicationError

from ...models import Run, RunImport
from ...selectors import baseline_tests
from ..progress import ProgressPrinter, run_follow
from .generate import EXIT_CANCELLED, EXIT_FAILED, EXIT_INTERRUPTED, EXIT_TIMEOUT
from .generate import Command as GenerateCommand


class Command(BaseCommand):
    help = (
        "Import a git repository (--git URL [--ref REF]) or a .zip/.tar.gz (--archive FILE) "
        "into PROJECT (id or name) as an import run, stream its progress and print its "
        "baseline (the repository's own tests)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("project", help="Project id or name.")
        source = parser.add_mutually_exclusive_group(required=True)
        source.add_argument("--git", metavar="URL", help="https://, ssh:// (file:// if allowed).")
        source.add_argument("--archive", type=Path, metavar="FILE", help="A .zip or .tar.gz.")
        parser.add_argument("--ref", metavar="REF", help="Branch, tag or full commit id.")
        parser.add_argument(
            "--submodules", action="store_true", help="Fetch submodules too (URLs checked)."
        )
        parser.add_argument("--user", metavar="EMAIL", help="Import as this user (default: owner).")
        parser.add_argument(
            "--timeout", type=float, metavar="SECONDS", help="Stop following after this long."
        )
        parser.add_argument("--poll", type=float, metavar="SECONDS", help="Event poll interval.")

    def handle(self, *args: Any, **opts: Any) -> None:
        from pipeline.services.imports import run_import_start

        if opts["archive"] is not None and (opts["ref"] or opts["submodules"]):
            raise CommandError("--ref and --submodules go with --git.")
        user = GenerateCommand._user(opts["user"])
        project = GenerateCommand._project(opts["project"], user)
        user = user or project.owner
        try:
            if opts["git"] is not None:
                git = {
                    "url": opts["git"],
                    "ref": opts["ref"] or "",
                    "submodules": opts["submodules"],
                }
                run = run_import_start(project=project, user=user, git=git)
            else:
                path: Path = opts["archive"]
                if not path.is_file():
                    raise CommandError(f"No file {path}.")
                with path.open("rb") as archive:
                    run = run_import_start(
                        project=project, user=user, archive=archive, archive_name=path.name
                    )
        except ApplicationError as exc:
            raise CommandError(exc.detail) from exc
        self.stdout.write(
            self.style.SUCCESS(
                f"Import run {run.pk} started for project {project.pk} ({project.name})"
            )
        )
        self._follow(run, opts)

    def _follow(self, run: Run, opts: dict[str, Any]) -> None:
        printer = ProgressPrinter(
            out=self.stdout, started=run.created_at, verbosity=opts.get("verbosity", 1)
        )
        try:
            final = run_follow(
                run=run, printer=printer, poll_seconds=opts["poll"], timeout_seconds=opts["timeout"]
            )
        except KeyboardInterrupt:
            self.stderr.write(f"\nStopped following; import run {run.pk} goes on.")
            raise CommandError("interrupted", returncode=EXIT_INTERRUPTED) from None
        run.refresh_from_db()
        if final is None:
            raise CommandError(
                f"Import run {run.pk} still {run.status} after {opts['timeout']}s.",
                returncode=EXIT_TIMEOUT,
            )
        if final["type"] == "run.cancelled":
            raise CommandError(f"Import run {run.pk} was cancelled.", returncode=EXIT_CANCELLED)
        if final["type"] == "run.failed":
            raise CommandError(f"Import run {run.pk} failed: {run.error}", returncode=EXIT_FAILED)
        self._summary(run)

    def _summary(self, run: Run) -> None:
        record = RunImport.objects.get(run=run)
        where = record.url or record.archive_name
        commit = f" at commit {record.commit}" if record.commit else ""
        self.stdout.write(
            f"Imported {where}{commit}: {record.files} files, {record.bytes} bytes, "
            f"{len(record.binary)} binary (never shown to a model), {len(record.skipped)} skipped"
        )
        if record.baseline_status == RunImport.Baseline.NOT_RUN:
            self.stdout.write(f"Baseline: not run: {record.baseline_reason}")
        else:
            counts = record.baseline_counts or {}
            self.stdout.write(
                f"Baseline ({record.baseline_command}): {record.baseline_status}, "
                f"{counts.get('passed', 0)} passed, {counts.get('failed', 0)} failed, "
                f"{counts.get('errors', 0)} errors, {counts.get('skipped', 0)} skipped"
            )
            for test in baseline_tests(run_id=run.pk):
                if test["outcome"] not in ("passed", "skipped", "xfailed"):
                    self.stdout.write(f"  {test['outcome']}: {test['id']}")
        self.stdout.write(
            f'Next: manage.py generate {run.project_id} "what to change" builds on run {run.pk}.'
        )
