"""Settings of the repositories app: imports and delivery.

Every limit of an import is checked entry by entry before anything is kept, and a value
beyond it refuses the import with a plain reason. Forge secrets (tokens, SSH keys, webhook
secrets) are stored encrypted with ``SECRETS_ENCRYPTION_KEYS`` (``components/secrets.py``).
"""

import re
from datetime import timedelta

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
# Largest archive (.zip, .tar.gz) an import may upload, in bytes; refused while it arrives.
REPOSITORY_IMPORT_MAX_UPLOAD_BYTES = env.int(
    "REPOSITORY_IMPORT_MAX_UPLOAD_BYTES", default=50 * 1024 * 1024
)

# --- Delivery --------------------------------------------------------------------------------
# Name of the bot that authors delivered commits (the user is named as a co-author).
REPOSITORY_BOT_NAME = env.str("REPOSITORY_BOT_NAME", default="aiflow")
# Email of the bot that authors delivered commits.
REPOSITORY_BOT_EMAIL = env.str("REPOSITORY_BOT_EMAIL", default="aiflow@users.noreply.localhost")
# A known_hosts file holding the forges' SSH host keys; empty: each SSH connection accepts the
# key it is shown (trust on first use, every time), which does not detect a forged host.
REPOSITORY_SSH_KNOWN_HOSTS = env.str("REPOSITORY_SSH_KNOWN_HOSTS", default="")

# Branch a run is delivered to when the request names none: this prefix and the run's id
# (``aiflow/run-42``).
REPOSITORY_DELIVERY_BRANCH_PREFIX = env.str(
    "REPOSITORY_DELIVERY_BRANCH_PREFIX", default="aiflow/run-"
)
if not re.match(r"^[A-Za-z0-9][A-Za-z0-9._/+-]{0,150}$", REPOSITORY_DELIVERY_BRANCH_PREFIX) or (
    ".." in REPOSITORY_DELIVERY_BRANCH_PREFIX or "/." in REPOSITORY_DELIVERY_BRANCH_PREFIX
):
    raise ImproperlyConfigured(
        "REPOSITORY_DELIVERY_BRANCH_PREFIX must be the start of a plain branch name "
        "(letters, digits, . _ / + -)"
    )
# Times a delivery is tried again after a failure that may pass (the remote or the forge
# unreachable or too slow, the forge answering 5xx), with a growing pause; then it fails.
REPOSITORY_DELIVERY_RETRIES = env.int("REPOSITORY_DELIVERY_RETRIES", default=3)
# Seconds after which a delivery still queued or pushing is taken to be lost (its worker
# died, the broker lost the message) and is queued again by the beat; longer than a push
# can take (REPOSITORY_IMPORT_TIMEOUT_SECONDS).
REPOSITORY_DELIVERY_STALE_SECONDS = env.int("REPOSITORY_DELIVERY_STALE_SECONDS", default=900)
# How often, in seconds, the beat looks for lost deliveries.
REPOSITORY_DELIVERY_SWEEP_SECONDS = env.int("REPOSITORY_DELIVERY_SWEEP_SECONDS", default=60)
if REPOSITORY_DELIVERY_RETRIES < 0:
    raise ImproperlyConfigured("REPOSITORY_DELIVERY_RETRIES cannot be negative")
if REPOSITORY_DELIVERY_SWEEP_SECONDS < 1:
    raise ImproperlyConfigured("REPOSITORY_DELIVERY_SWEEP_SECONDS must be at least 1")
REPOSITORY_BEAT_SCHEDULE: dict = {
    "pipeline-deliveries-resend": {
        "task": "pipeline.deliveries_resend",
        "schedule": timedelta(seconds=REPOSITORY_DELIVERY_SWEEP_SECONDS),
        "options": {"queue": "default", "expires": REPOSITORY_DELIVERY_SWEEP_SECONDS},
    },
}

for _name in (
    "REPOSITORY_IMPORT_MAX_BYTES",
    "REPOSITORY_IMPORT_MAX_FILES",
    "REPOSITORY_IMPORT_MAX_FILE_BYTES",
    "REPOSITORY_IMPORT_MAX_DEPTH",
    "REPOSITORY_IMPORT_MAX_FETCH_BYTES",
    "REPOSITORY_IMPORT_MAX_UPLOAD_BYTES",
):
    if globals()[_name] < 1:
        raise ImproperlyConfigured(f"{_name} must be at least 1")
if REPOSITORY_IMPORT_TIMEOUT_SECONDS <= 0:
    raise ImproperlyConfigured("REPOSITORY_IMPORT_TIMEOUT_SECONDS must be positive")
if REPOSITORY_DELIVERY_STALE_SECONDS <= 2 * REPOSITORY_IMPORT_TIMEOUT_SECONDS:
    raise ImproperlyConfigured(
        "REPOSITORY_DELIVERY_STALE_SECONDS must be more than twice "
        "REPOSITORY_IMPORT_TIMEOUT_SECONDS (a push and a fetch may each take that long)"
    )
if REPOSITORY_IMPORT_MAX_FILE_BYTES > REPOSITORY_IMPORT_MAX_BYTES:
    raise ImproperlyConfigured(
        "REPOSITORY_IMPORT_MAX_FILE_BYTES cannot be larger than REPOSITORY_IMPORT_MAX_BYTES"
    )
if REPOSITORY_IMPORT_MAX_UPLOAD_BYTES > REPOSITORY_IMPORT_MAX_BYTES:
    raise ImproperlyConfigured(
        "REPOSITORY_IMPORT_MAX_UPLOAD_BYTES cannot be larger than REPOSITORY_IMPORT_MAX_BYTES"
    )
if "@" not in REPOSITORY_BOT_EMAIL or "\n" in REPOSITORY_BOT_NAME + REPOSITORY_BOT_EMAIL:
    raise ImproperlyConfigured("REPOSITORY_BOT_EMAIL must be an email address")
