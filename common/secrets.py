"""Secrets at rest: forge tokens, SSH keys and webhook signing secrets, encrypted with Fernet
(AES-128-CBC with HMAC-SHA256, from ``cryptography``) under keys from the environment.

``SECRETS_ENCRYPTION_KEYS`` is a list: the first key encrypts, every key decrypts
(``MultiFernet``), so a key is rotated by putting a new one first, running
``manage.py rotate_secrets`` (which re-encrypts every stored secret with it) and then dropping
the old one. Without keys (development and tests only; production refuses to start) a key is
derived from ``SECRET_KEY`` and labelled as such.

A model keeping secrets names its ciphertext columns in ``ENCRYPTED_FIELDS``; rotation finds
every such model itself, so a new one is rotated without being listed here.

A decrypted secret is a ``Secret``: its ``repr`` and ``str`` never show the value, so a
secret passed to a log line or an exception by mistake shows as ``Secret(***)``.
"""

from __future__ import annotations

import base64
import hashlib
from functools import cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.apps import apps
from django.conf import settings
from django.db import models, transaction

from common.errors import ApplicationError

DEVELOPMENT_KEY_LABEL = b"aiflow development-only secrets at rest, never production:"


class SecretUnreadable(ApplicationError):
    """A stored secret none of the configured keys opens (a key was dropped too early)."""

    code = "secret_unreadable"


class Secret:
    """A decrypted secret that does not print itself."""

    __slots__ = ("_value",)

    def __init__(self, value: str):
        self._value = value

    def reveal(self) -> str:
        """The value, for the one place that sends it (a header, a key file, a signature)."""
        return self._value

    def __repr__(self) -> str:
        return "Secret(***)"

    __str__ = __repr__

    def __bool__(self) -> bool:
        return bool(self._value)


def development_key(secret_key: str) -> bytes:
    """The development-only Fernet key: SHA-256 of a label and ``SECRET_KEY``."""
    digest = hashlib.sha256(DEVELOPMENT_KEY_LABEL + secret_key.encode()).digest()
    return base64.urlsafe_b64encode(digest)


@cache
def _fernet(keys: tuple[str, ...], secret_key: str) -> MultiFernet:
    material = [key.encode() for key in keys] or [development_key(secret_key)]
    return MultiFernet([Fernet(key) for key in material])


def fernet() -> MultiFernet:
    """The configured keys as one ``MultiFernet`` (cached per key list)."""
    return _fernet(tuple(settings.SECRETS_ENCRYPTION_KEYS), settings.SECRET_KEY)


def encrypt(plaintext: str) -> str:
    """Ciphertext (a Fernet token, ASCII) of ``plaintext`` under the first key."""
    return fernet().encrypt(plaintext.encode()).decode("ascii")


def decrypt(ciphertext: str) -> Secret:
    """The secret inside ``ciphertext``; ``SecretUnreadable`` if no configured key opens it."""
    try:
        return Secret(fernet().decrypt(ciphertext.encode("ascii")).decode())
    except (InvalidToken, UnicodeError) as exc:
        raise SecretUnreadable(
            "A stored secret cannot be read with the configured keys; set it again."
        ) from exc


def rotate(ciphertext: str) -> str:
    """``ciphertext`` re-encrypted under the first key (unchanged secret)."""
    try:
        return fernet().rotate(ciphertext.encode("ascii")).decode("ascii")
    except (InvalidToken, UnicodeError) as exc:
        raise SecretUnreadable("A stored secret cannot be read with the configured keys.") from exc


def encrypted_models() -> list[tuple[type[models.Model], tuple[str, ...]]]:
    """Every installed model that keeps secrets, with its ciphertext columns
    (``ENCRYPTED_FIELDS``), in a fixed order."""
    found = [
        (model, tuple(fields))
        for model in apps.get_models()
        if (fields := getattr(model, "ENCRYPTED_FIELDS", None))
    ]
    return sorted(found, key=lambda item: item[0]._meta.label)


def secrets_rotate() -> int:
    """Re-encrypt every stored secret of every model under the first key; the number
    re-encrypted.

    Run after putting a new key first in ``SECRETS_ENCRYPTION_KEYS``; the old key can be
    dropped once this finished. Each row is locked while it is rewritten. A secret no key
    opens stops the rotation with ``SecretUnreadable`` naming its row (the rows before it
    stay re-encrypted, so running it again after fixing the keys is safe).
    """
    rotated = 0
    for model, fields in encrypted_models():
        for pk in model._default_manager.values_list("pk", flat=True).order_by("pk"):
            with transaction.atomic():
                row = model._default_manager.select_for_update().filter(pk=pk).first()
                if row is None:  # deleted meanwhile
                    continue
                changed = []
                for field in fields:
                    ciphertext = getattr(row, field)
                    if not ciphertext:
                        continue
                    try:
                        setattr(row, field, rotate(ciphertext))
                    except SecretUnreadable as exc:
                        raise SecretUnreadable(
                            f"{model._meta.label} {pk}: {field} cannot be read with the "
                            "configured keys; put the key it was stored with back in "
                            "SECRETS_ENCRYPTION_KEYS, or set that secret again."
                        ) from exc
                    changed.append(field)
                if changed:
                    row.save(update_fields=changed)
                    rotated += len(changed)
    return rotated
