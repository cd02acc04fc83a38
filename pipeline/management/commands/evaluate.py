"""``manage.py evaluate SUITE --chains CHAIN [CHAIN ...]``: a suite of prompts with hidden
tests, run once per provider chain; prints a table per chain and writes JSON and markdown.

The runs are carried out by the Celery workers (``make up``), like any other run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser

from common.errors import ApplicationError
from projects.sandbox import sandbox_ensure_available

from ...evaluation import (
    chain_table,
    comparison_table,
    evaluation_run,
    evaluation_write,
    suite_load,
)
from ...evaluation.runner import chain_validate


class Command(BaseCommand):
    help = (
        "Run every case of SUITE (a directory, or a suite under evaluation/) once per provider "
        "chain, then each case's hidden tests in the sandbox against the run's tree; print "
        "runs completed, hidden tests passed (executability), mean wall time, tokens and "
        "cost per run for each chain, and write JSON and markdown results."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("suite", help="Suite directory, or the name of one in evaluation/.")
        parser.add_argument(
            "--chains",
            nargs="+",
            required=True,
            metavar="CHAIN",
            help="Provider chains to compare, each 'provider:model[,provider:model...]' "
            "(failover order), e.g. offline:offline openrouter:openai/gpt-4o-mini.",
        )
        parser.add_argument(
            "--user",
            metavar="EMAIL",
            help="Whose projects the runs belong to (default: the only superuser).",
        )
        parser.add_argument("--case", action="append", dest="cases", help="Only this case.")
        parser.add_argument(
            "--output",
            type=Path,
            metavar="DIR",
            help="Where to write the results (default: var/evaluation/).",
        )
        parser.add_argument(
            "--timeout",
            type=float,
            default=1800.0,
            metavar="SECONDS",
            help="Cancel a run still going after this long (default 1800).",
        )
        parser.add_argument(
            "--concurrency", type=int, default=1, help="Runs in flight at once (default 1)."
        )
        parser.add_argument(
            "--poll", type=float, default=1.0, help="Seconds between looks at the runs."
        )

    def handle(self, *args: Any, **opts: Any) -> None:
        try:
            suite = suite_load(ref=opts["suite"], only=opts["cases"])
            chains = [chain_validate(chain.split(",")) for chain in opts["chains"]]
            sandbox_ensure_available()
        except ApplicationError as exc:
            raise CommandError(exc.detail) from exc
        if len({",".join(chain) for chain in chains}) != len(chains):
            raise CommandError("Name each chain once.")
        user = self._user(opts["user"])
        self.stdout.write(
            f"Suite {suite.name}: {len(suite.cases)} cases, {len(chains)} chain(s); "
            "the runs are carried out by the workers."
        )
        evaluation = evaluation_run(
            suite=suite,
            chains=chains,
            user=user,
            timeout_seconds=opts["timeout"],
            concurrency=opts["concurrency"],
            poll_seconds=opts["poll"],
            on_progress=self.stdout.write,
        )
        for chain in evaluation.chains:
            self.stdout.write("")
            self.stdout.write(chain_table(chain))
        self.stdout.write("")
        self.stdout.write(comparison_table(evaluation))
        directory = opts["output"] or Path(settings.BASE_DIR) / "var" / "evaluation"
        json_path, md_path = evaluation_write(evaluation, directory=directory)
        self.stdout.write("")
        self.stdout.write(f"Results: {json_path}")
        self.stdout.write(f"         {md_path}")

    @staticmethod
    def _user(email: str | None) -> Any:
        users = get_user_model().objects
        if email:
            user = users.filter(email__iexact=email).first()
            if user is None:
                raise CommandError(f"No user with email {email}.")
            return user
        superusers = list(users.filter(is_superuser=True)[:2])
        if len(superusers) != 1:
            raise CommandError("Name the user whose projects the runs belong to: --user EMAIL.")
        return superusers[0]
