"""Backup codes: generation and the keyed digest under which they are stored."""

import secrets

from django.utils.crypto import salted_hmac

_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"  # no 0/o, 1/l/i: read aloud and typed by hand


def backup_code_generate() -> str:
    """A fresh code, ``xxxxx-xxxxx`` (about 50 bits of entropy)."""
    raw = "".join(secrets.choice(_ALPHABET) for _ in range(10))
    return f"{raw[:5]}-{raw[5:]}"


def backup_code_normalise(code: str) -> str:
    """Lower case, without spaces or dashes, so ``ABCDE FGHIJ`` matches ``abcde-fghij``."""
    return "".join(ch for ch in code.lower() if ch.isalnum())


def backup_code_digest(code: str) -> str:
    """HMAC-SHA256 keyed by SECRET_KEY: never the code itself in the database."""
    return salted_hmac(
        "accounts.backup_code", backup_code_normalise(code), algorithm="sha256"
    ).hexdigest()
