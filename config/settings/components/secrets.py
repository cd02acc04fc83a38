"""Secrets at rest (``common.secrets``): the keys that encrypt forge tokens, SSH keys and
webhook signing secrets.

``SECRETS_ENCRYPTION_KEYS`` is a list of Fernet keys: the first encrypts, all decrypt, so a key
is rotated by putting a new one first, running ``manage.py rotate_secrets`` and then dropping
the old one. Production refuses to start without it (``production.py``).
"""

import base64

from django.core.exceptions import ImproperlyConfigured

from ..env import env

# Fernet keys (comma-separated, 32 url-safe base64 bytes each, e.g. from
# `python -c "from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())"`)
# that encrypt forge tokens, SSH keys and webhook signing secrets: the first encrypts, all
# decrypt (`manage.py rotate_secrets` re-encrypts with the first). Empty outside production: a
# development key derived from DJANGO_SECRET_KEY (never in production, which refuses to start
# without real keys).
SECRETS_ENCRYPTION_KEYS = env.list("SECRETS_ENCRYPTION_KEYS", default=[])
for _index, _key in enumerate(SECRETS_ENCRYPTION_KEYS, start=1):
    try:
        _raw = base64.urlsafe_b64decode(_key.strip().encode())
    except ValueError as _exc:  # binascii.Error is one
        raise ImproperlyConfigured(
            f"SECRETS_ENCRYPTION_KEYS: key {_index} is not url-safe base64"
        ) from _exc
    if len(_raw) != 32:
        raise ImproperlyConfigured(
            f"SECRETS_ENCRYPTION_KEYS: key {_index} must decode to 32 bytes (a Fernet key)"
        )
SECRETS_ENCRYPTION_KEYS = [_key.strip() for _key in SECRETS_ENCRYPTION_KEYS]
