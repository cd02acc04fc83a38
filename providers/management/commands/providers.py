"""``python manage.py providers check``: a one-token request to each configured provider."""

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from ...selectors import configured_models
from ...services import provider_check


class Command(BaseCommand):
    help = "Providers: 'check' sends a one-token request to each configured provider."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("action", choices=["check"])
        parser.add_argument(
            "--all-models", action="store_true", help="check every model of every chain"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        targets: list[tuple[str, str]] = []
        for provider, models in configured_models().items():
            names = list(models) if options["all_models"] else list(models)[:1]
            targets.extend((provider, model) for model in names)
        rows = [provider_check(provider=provider, model=model) for provider, model in targets]
        header = ("PROVIDER", "MODEL", "STATUS", "LATENCY", "DETAIL")
        lines = [
            (
                row["provider"],
                row["model"],
                "ok" if row["ok"] else f"FAIL {row['status'] or ''}".strip(),
                f"{row['latency_ms']} ms",
                row["detail"].replace("\n", " ")[:80],
            )
            for row in rows
        ]
        widths = [
            max(len(str(cell)) for cell in column) for column in zip(header, *lines, strict=False)
        ]
        for line in (header, *lines):
            self.stdout.write("  ".join(str(c).ljust(w) for c, w in zip(line, widths, strict=True)))
        failed = [row for row in rows if not row["ok"]]
        if failed:
            raise CommandError(f"{len(failed)} of {len(rows)} provider checks failed")
