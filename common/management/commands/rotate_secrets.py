"""``manage.py rotate_secrets``: re-encrypt every stored secret with the first key."""

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from common.secrets import SecretUnreadable, encrypted_models, secrets_rotate


class Command(BaseCommand):
    help = (
        "Re-encrypt every stored secret (forge tokens, SSH keys and webhook signing secrets) "
        "with the first key of SECRETS_ENCRYPTION_KEYS (put the new key first, run this, then "
        "drop the old key)."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            count = secrets_rotate()
        except SecretUnreadable as exc:
            raise CommandError(exc.detail) from exc
        kinds = ", ".join(model._meta.label for model, _ in encrypted_models())
        self.stdout.write(f"Re-encrypted {count} secret(s) with the first key ({kinds}).")
