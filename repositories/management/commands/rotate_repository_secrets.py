"""``manage.py rotate_repository_secrets``: re-encrypt every forge secret with the first key."""

from typing import Any

from django.core.management.base import BaseCommand

from repositories.services import secrets_rotate


class Command(BaseCommand):
    help = (
        "Re-encrypt every stored forge token, SSH key and webhook secret with the first key of "
        "REPOSITORY_SECRET_KEYS (put the new key first, run this, then drop the old key)."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        count = secrets_rotate()
        self.stdout.write(f"Re-encrypted {count} secret(s) with the first key.")
