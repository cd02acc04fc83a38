"""Endpoint signing secrets: made here, shown once, kept encrypted at rest.

A secret is ``whsec_`` and the base64 of 32 random bytes, as the Standard Webhooks
specification writes them (its reference libraries accept it as it is). The HMAC needs the
secret itself, so it cannot be hashed: it is stored as a Fernet token (AES-128-CBC with
HMAC-SHA256, from ``cryptography``) under ``WEBHOOKS_SECRET_KEYS``, a list whose first key
encrypts and every key decrypts (``MultiFernet``), so a key is rotated by putting a new one
first. Without keys (development and tests; production refuses to start) a key is derived
from ``SECRET_KEY`` and labelled as such. Only the delivery task decrypts it.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from functools import cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings

from common.errors import ApplicationError

PREFIX = "whsec_"
SECRET_BYTES = 32
DEVELOPMENT_KEY_LABEL = b"aiflow development-only webhook secrets, never production:"


class SecretUnreadable(ApplicationError):
    """A stored secret that none of the configured keys opens (a key was dropped too early)."""

    code = "secret_unreadable"


def secret_generate() -> str:
    """A new signing secret, ``whsec_<base64 of 32 random bytes>``."""
    return PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode("ascii")


def development_key(secret_key: str) -> bytes:
    """The development-only Fernet key: SHA-256 of a label and ``SECRET_KEY``."""
    digest = hashlib.sha256(DEVELOPMENT_KEY_LABEL + secret_key.encode()).digest()
    return base64.urlsafe_b64encode(digest)


@cache
def _fernet(keys: tuple[str, ...], secret_key: str) -> MultiFernet:
    material = [key.encode() for key in keys] or [development_key(secret_key)]
    return MultiFernet([Fernet(key) for key in material])


def _keys() -> MultiFernet:
    return _fernet(tuple(settings.WEBHOOKS_SECRET_KEYS), settings.SECRET_KEY)


def secret_encrypt(secret: str) -> str:
    """The Fernet token (ASCII) of ``secret`` under the first key."""
    return _keys().encrypt(secret.encode()).decode("ascii")


def secret_decrypt(token: str) -> str:
    """The secret inside ``token``; ``SecretUnreadable`` if no configured key opens it."""
    try:
        return _keys().decrypt(token.encode("ascii")).decode()
    except (InvalidToken, UnicodeError) as exc:
        raise SecretUnreadable(
            "The endpoint's secret cannot be read with the configured keys; create the "
            "endpoint again."
        ) from exc
