"""``manage.py generate PROJECT "prompt"``: start a run and follow it to the end.

The run is a follow-up of the project's latest completed run unless ``--base RUN`` names
another base or ``--fresh`` starts from nothing.

With ``--deliver`` the run is delivered to the project's forge when it completes (a branch
and a pull request; ``--branch``, ``--no-pull-request``) and the command waits for that too.

Exit status: 0 when the run completed (and, with ``--deliver``, was delivered), 1 when it
failed (or its delivery did), 2 when it was cancelled, 3 when ``--timeout`` passed first,
130 on Ctrl-C (the run goes on without the terminal).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db.models import Q

from common.errors import ApplicationError
from projects.artifacts import (
    InvalidArtifactPath,
    artifact_list_for_run,
    artifact_path_normalize,
    artifact_read,
    artifact_zip_write,
)
from projects.models import Project

from ...models import Run
from ..progress import ProgressPrinter, artifact_locations, run_follow

EXIT_FAILED, EXIT_CANCELLED, EXIT_TIMEOUT, EXIT_INTERRUPTED = 1, 2, 3, 130


class Command(BaseCommand):
    help = (
        "Start a run of PROJECT (id or name) for PROMPT and stream its progress (stage, step, "
        "model, tokens, cost, elapsed) until it ends; print where the artifacts are."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("project", nargs="?", help="Project id or name.")
        parser.add_argument("prompt", nargs="?", help="What to build.")
        parser.add_argument(
            "--provider",
            action="append",
            dest="providers",
            metavar="PROVIDER[:MODEL]",
            help="Provider (and model) to use, in failover order; repeatable.",
        )
        parser.add_argument(
            "--approve",
            action="store_true",
            help="Approve the design gate automatically when the run waits for approval.",
        )
        parser.add_argument(
            "--require-approval",
            action="store_true",
            help="Stop at the approval gate after design (with --approve: and go on).",
        )
        parser.add_argument("--user", metavar="EMAIL", help="Run as this user (default: owner).")
        base = parser.add_mutually_exclusive_group()
        base.add_argument(
            "--base",
            type=int,
            metavar="RUN",
            help="Change the tree of this completed run of the project "
            "(default: the project's latest completed run).",
        )
        base.add_argument(
            "--fresh", action="store_true", help="Start from nothing, not from an earlier run."
        )
        parser.add_argument("--max-design-rounds", type=int)
        parser.add_argument("--max-fix-attempts", type=int)
        parser.add_argument("--budget-usd", metavar="DOLLARS")
        parser.add_argument(
            "--attach", type=int, metavar="RUN", help="Follow an existing run instead."
        )
        parser.add_argument(
            "--output", type=Path, metavar="DIR", help="Write the finished run's files here."
        )
        parser.add_argument("--zip", type=Path, metavar="FILE", help="Write the run's zip here.")
        parser.add_argument(
            "--timeout", type=float, metavar="SECONDS", help="Stop following after this long."
        )
        parser.add_argument("--poll", type=float, metavar="SECONDS", help="Event poll interval.")
        parser.add_argument(
            "--deliver",
            action="store_true",
            help="Deliver the run to the project's forge when it completes (a branch and a "
            "pull request) and wait for it.",
        )
        parser.add_argument(
            "--branch", help="With --deliver: the branch (default aiflow/run-<id>)."
        )
        parser.add_argument(
            "--no-pull-request",
            action="store_true",
            help="With --deliver: push the branch only.",
        )

    def handle(self, *args: Any, **opts: Any) -> None:
        if opts["attach"] is not None:
            run = Run.objects.select_related("project").filter(id=opts["attach"]).first()
            if run is None:
                raise CommandError(f"No run {opts['attach']}.")
            self.stdout.write(f"Following run {run.pk} of project {run.project_id} ({run.status})")
        else:
            run = self._start(opts)
        self._follow(run, opts)

    # --- starting ------------------------------------------------------------------------

    def _start(self, opts: dict[str, Any]) -> Run:
        if not opts["project"] or not opts["prompt"]:
            raise CommandError('Usage: generate PROJECT "prompt" (or --attach RUN).')
        user = self._user(opts["user"])
        project = self._project(opts["project"], user)
        user = user or project.owner
        options = self._options(opts)
        from pipeline.services.followups import LATEST, BaseRunChoice, run_generate

        base: BaseRunChoice = LATEST
        if opts["fresh"]:
            base = None
        elif opts["base"] is not None:
            base = opts["base"]
        try:
            run = run_generate(
                project=project,
                user=user,
                prompt=opts["prompt"],
                options=options,
                base_run_id=base,
                deliver=(
                    {"branch": opts["branch"], "pull_request": not opts["no_pull_request"]}
                    if opts["deliver"]
                    else None
                ),
            )
        except ApplicationError as exc:
            raise CommandError(exc.detail) from exc
        self.stdout.write(
            self.style.SUCCESS(f"Run {run.pk} started for project {project.pk} ({project.name})")
        )
        self.stdout.write(
            f"  base: run {run.base_run_id}" if run.base_run_id else "  base: none (fresh start)"
        )
        self.stdout.write(f"  options: {run.options}")
        return run

    @staticmethod
    def _user(email: str | None) -> Any:
        if not email:
            return None
        user = get_user_model().objects.with_email(email).first()
        if user is None:
            raise CommandError(f"No user with email {email}.")
        return user

    @staticmethod
    def _project(ref: str, user: Any) -> Project:
        projects = Project.objects.all() if user is None else Project.objects.filter(owner=user)
        lookup = Q(name=ref) | Q(id=int(ref)) if ref.isdigit() else Q(name=ref)
        matches = list(projects.filter(lookup).select_related("owner")[:3])
        by_id = [p for p in matches if str(p.pk) == ref]
        if by_id:
            return by_id[0]
        if not matches:
            raise CommandError(
                f"No project {ref!r}" + (f" owned by {user.email}." if user else ".")
            )
        if len(matches) > 1:
            raise CommandError(f"Several projects are named {ref!r}; give its id or --user EMAIL.")
        return matches[0]

    @staticmethod
    def _options(opts: dict[str, Any]) -> dict[str, Any]:
        options: dict[str, Any] = {}
        if opts["providers"]:
            options["providers"] = opts["providers"]
        if opts["require_approval"]:
            options["require_approval"] = True
        for name in ("max_design_rounds", "max_fix_attempts", "budget_usd"):
            if opts[name] is not None:
                options[name] = opts[name]
        return options

    # --- following -----------------------------------------------------------------------

    def _follow(self, run: Run, opts: dict[str, Any]) -> None:
        printer = ProgressPrinter(
            out=self.stdout, started=run.created_at, verbosity=opts.get("verbosity", 1)
        )

        def on_event(event: dict[str, Any]) -> None:
            if event["type"] != "run.awaiting_approval":
                return
            if opts["approve"]:
                self._approve(run)
            else:
                self.stdout.write(
                    f"  waiting for approval: POST /runs/{run.pk}/approve "
                    f"(or run again with --attach {run.pk} --approve)"
                )

        try:
            final = run_follow(
                run=run,
                printer=printer,
                on_event=on_event,
                poll_seconds=opts["poll"],
                timeout_seconds=opts["timeout"],
            )
        except KeyboardInterrupt:
            self.stderr.write(f"\nStopped following; run {run.pk} goes on (--attach {run.pk}).")
            raise CommandError("interrupted", returncode=EXIT_INTERRUPTED) from None
        run.refresh_from_db()
        self._summary(run, printer)
        if final is None:
            raise CommandError(
                f"Run {run.pk} still {run.status} after {opts['timeout']}s.",
                returncode=EXIT_TIMEOUT,
            )
        if final["type"] == "run.cancelled":
            raise CommandError(f"Run {run.pk} was cancelled.", returncode=EXIT_CANCELLED)
        if final["type"] == "run.failed":
            reason = run.error or final["payload"].get("detail") or final["payload"].get("reason")
            raise CommandError(f"Run {run.pk} failed: {reason}", returncode=EXIT_FAILED)
        self._artifacts(run, opts)
        if opts.get("deliver"):
            self._delivery(run, opts)

    def _delivery(self, run: Run, opts: dict[str, Any]) -> None:
        from ...delivery.services import run_deliver
        from ...models import RunDelivery
        from ..delivery_follow import delivery_report

        attempt = 1
        if not RunDelivery.objects.filter(run_id=run.pk).exists():  # --attach to a finished run
            try:
                attempt = run_deliver(
                    run=run,
                    user=run.created_by or run.project.owner,
                    branch=opts["branch"],
                    pull_request=not opts["no_pull_request"],
                ).attempt
            except ApplicationError as exc:
                raise CommandError(exc.detail, returncode=EXIT_FAILED) from exc
        self.stdout.write("Delivering to the project's forge…")
        delivery_report(
            self.stdout.write,
            run_id=run.pk,
            attempt=attempt,
            timeout_seconds=opts["timeout"],
            still_under_way=(
                f"The delivery of run {run.pk} is still under way (manage.py deliver {run.pk})."
            ),
        )

    def _approve(self, run: Run) -> None:
        from pipeline.services import run_approve

        try:
            run_approve(run=run)
        except ApplicationError as exc:  # someone else approved (or cancelled) first
            self.stdout.write(f"  approval not applied: {exc.detail}")
            return
        self.stdout.write(self.style.SUCCESS("  approved (--approve)"))

    def _summary(self, run: Run, printer: ProgressPrinter) -> None:
        elapsed = ""
        if run.finished_at is not None:
            elapsed = f" in {(run.finished_at - run.created_at).total_seconds():.1f}s"
        self.stdout.write(
            f"Run {run.pk} {run.status}{elapsed}: {printer.totals.steps} steps, tokens "
            f"{run.tokens_in}/{run.tokens_out}, cost ${run.cost_usd:.6f}"
            + (f", error: {run.error}" if run.error else "")
        )

    def _artifacts(self, run: Run, opts: dict[str, Any]) -> None:
        artifacts = list(artifact_list_for_run(run=run))
        self.stdout.write(f"Artifacts: {len(artifacts)} files")
        for name, url in artifact_locations(run=run).items():
            if name != "events":
                self.stdout.write(f"  {name}: {url}")
        if opts["output"] is not None:
            root = opts["output"].resolve()
            for artifact in artifacts:
                try:
                    relative = artifact_path_normalize(artifact.path)
                except InvalidArtifactPath:  # never stored, but never written outside root
                    continue
                target = root / relative
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(artifact_read(artifact=artifact))
            self.stdout.write(f"  path: {root}")
        if opts["zip"] is not None:
            opts["zip"].parent.mkdir(parents=True, exist_ok=True)
            with opts["zip"].open("wb") as handle:
                artifact_zip_write(run=run, fileobj=handle)
            self.stdout.write(f"  zip: {opts['zip'].resolve()}")
        if opts["output"] is None and opts["zip"] is None:
            self.stdout.write(
                f"  (--attach {run.pk} --output DIR or --zip FILE writes them to this machine)"
            )
