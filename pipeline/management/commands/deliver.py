"""``manage.py deliver RUN``: push a completed run to its project's forge as a branch with
one commit, open (or update) its pull request, and wait until it is done.

The delivery runs on the workers (``pipeline.deliver_run``), exactly as
``POST /runs/{id}/deliver`` asks for it; delivering again updates the same branch and the
same pull request. Exit status: 0 when delivered, 1 when it failed or was refused, 3 when
``--timeout`` passed first.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from common.errors import ApplicationError

from ...delivery.services import run_deliver
from ...models import Run
from ..delivery_follow import EXIT_FAILED, delivery_report


class Command(BaseCommand):
    help = (
        "Deliver a completed run to its project's forge: one commit on a branch "
        "(default aiflow/run-<id>) and a pull request; wait and print its link."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("run", type=int, help="The run's id.")
        parser.add_argument("--branch", help="The branch (a run keeps its first one).")
        parser.add_argument(
            "--no-pull-request",
            action="store_true",
            help="Push the branch only; open no pull request.",
        )
        parser.add_argument(
            "--timeout", type=float, metavar="SECONDS", help="Stop waiting after this long."
        )
        parser.add_argument(
            "--no-wait", action="store_true", help="Ask for the delivery and return at once."
        )

    def handle(self, *args: Any, **opts: Any) -> None:
        run = (
            Run.objects.select_related("project__owner", "created_by")
            .filter(pk=opts["run"])
            .first()
        )
        if run is None:
            raise CommandError(f"No run {opts['run']}.")
        try:
            delivery = run_deliver(
                run=run,
                user=run.created_by or run.project.owner,
                branch=opts["branch"],
                pull_request=not opts["no_pull_request"],
            )
        except ApplicationError as exc:
            raise CommandError(exc.detail, returncode=EXIT_FAILED) from exc
        self.stdout.write(f"Delivery of run {run.pk} to branch {delivery.branch}: {delivery.state}")
        if opts["no_wait"]:
            return
        delivery_report(
            self.stdout.write,
            run_id=run.pk,
            attempt=delivery.attempt,
            timeout_seconds=opts["timeout"],
            still_under_way=(
                f"The delivery of run {run.pk} is still under way after {opts['timeout']}s."
            ),
        )
