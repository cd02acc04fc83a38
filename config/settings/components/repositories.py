"""Settings of the repositories app: imports and delivery.

Every limit of an import is checked entry by entry before anything is kept, and a value
beyond it refuses the import with a plain reason. Forge secrets (tokens, SSH keys, webhook
secrets) are stored encrypted with ``SECRETS_ENCRYPTION_KEYS`` (``components/secrets.py``).
"""

from django.core.exceptions import ImproperlyConfigured

from ..env import env

# --- Import limits ---------------------------------------------------------------------------
# Bytes an imported tree may hold in all (also the largest archive accepted).
REPOSITORY_IMPORT_MAX_BYTES = env.int("REPOSITORY_IMPORT_MAX_BYTES", default=100 * 1024 * 1024)
# Files (and symbolic links) an imported tree may hold.
REPOSITORY_IMPORT_MAX_FILES = env.int("REPOSITORY_IMPORT_MAX_FILES", default=5_000)
# Largest single file of an imported tree, in bytes.
REPOSITORY_IMPORT_MAX_FILE_BYTES = env.int(
    "REPOSITORY_IMPORT_MAX_FILE_BYTES", default=10 * 1024 * 1024
)
# Commits of history a git import may fetch (1: the named commit only).
REPOSITORY_IMPORT_MAX_DEPTH = env.int("REPOSITORY_IMPORT_MAX_DEPTH", default=1)
# Bytes git may download for one import or delivery (packed objects on disk).
REPOSITORY_IMPORT_MAX_FETCH_BYTES = env.int(
    "REPOSITORY_IMPORT_MAX_FETCH_BYTES", default=200 * 1024 * 1024
)
# Seconds an import may take in all (fetching, reading, checking); also bounds each delivery.
REPOSITORY_IMPORT_TIMEOUT_SECONDS = env.float("REPOSITORY_IMPORT_TIMEOUT_SECONDS", default=300.0)

# --- Delivery --------------------------------------------------------------------------------
# Name of the bot that authors delivered commits (the user is named as a co-author).
REPOSITORY_BOT_NAME = env.str("REPOSITORY_BOT_NAME", default="aiflow")
# Email of the bot that authors delivered commits.
REPOSITORY_BOT_EMAIL = env.str("REPOSITORY_BOT_EMAIL", default="aiflow@users.noreply.localhost")
# A known_hosts file holding the forges' SSH host keys; empty: each SSH connection accepts the
# key it is shown (trust on first use, every time), which does not detect a forged host.
REPOSITORY_SSH_KNOWN_HOSTS = env.str("REPOSITORY_SSH_KNOWN_HOSTS", default="")

for _name in (
    "REPOSITORY_IMPORT_MAX_BYTES",
    "REPOSITORY_IMPORT_MAX_FILES",
    "REPOSITORY_IMPORT_MAX_FILE_BYTES",
    "REPOSITORY_IMPORT_MAX_DEPTH",
    "REPOSITORY_IMPORT_MAX_FETCH_BYTES",
):
    if globals()[_name] < 1:
        raise ImproperlyConfigured(f"{_name} must be at least 1")
if REPOSITORY_IMPORT_TIMEOUT_SECONDS <= 0:
    raise ImproperlyConfigured("REPOSITORY_IMPORT_TIMEOUT_SECONDS must be positive")
if REPOSITORY_IMPORT_MAX_FILE_BYTES > REPOSITORY_IMPORT_MAX_BYTES:
    raise ImproperlyConfigured(
        "REPOSITORY_IMPORT_MAX_FILE_BYTES cannot be larger than REPOSITORY_IMPORT_MAX_BYTES"
    )
if "@" not in REPOSITORY_BOT_EMAIL or "\n" in REPOSITORY_BOT_NAME + REPOSITORY_BOT_EMAIL:
    raise ImproperlyConfigured("REPOSITORY_BOT_EMAIL must be an email address")
