"""Settings of the sandbox and the terminal, read from the environment.

The sandbox runs generated code under bubblewrap as an unprivileged uid taken from a pool
(``SANDBOX_UID_BASE`` .. ``SANDBOX_UID_BASE + SANDBOX_UID_COUNT - 1``), one uid per running
sandbox, so the process-count limit of one run never starves another. Without ``bwrap``
nothing runs, unless ``SANDBOX_MODE=unsafe-local`` is set explicitly; every result then
says ``mode: "unsafe-local"``.
"""

import sys

from django.core.exceptions import ImproperlyConfigured

from ..env import env

SANDBOX_MODE = env.str("SANDBOX_MODE", default="bubblewrap")
if SANDBOX_MODE not in ("bubblewrap", "unsafe-local"):
    raise ImproperlyConfigured(
        f"SANDBOX_MODE must be 'bubblewrap' or 'unsafe-local', not {SANDBOX_MODE!r}."
    )
SANDBOX_BWRAP = env.str("SANDBOX_BWRAP", default="bwrap")
SANDBOX_UID_BASE = env.int("SANDBOX_UID_BASE", default=200000)
SANDBOX_UID_COUNT = env.int("SANDBOX_UID_COUNT", default=256)
if SANDBOX_UID_BASE < 1000 or SANDBOX_UID_COUNT < 1:
    raise ImproperlyConfigured("SANDBOX_UID_BASE must be >= 1000 and SANDBOX_UID_COUNT >= 1.")
# Lock files that hand out the uids, one per uid (flock, so a crashed holder frees its uid).
SANDBOX_SLOT_DIR = env.str("SANDBOX_SLOT_DIR", default="/run/aiflow-sandbox")
# The Python environment mounted read-only inside (pytest, ruff, bandit come from it):
# by default the one this process runs in, and the interpreter it was made from.
SANDBOX_VENV = env.str("SANDBOX_VENV", default=sys.prefix)
SANDBOX_PYTHON_HOME = env.str("SANDBOX_PYTHON_HOME", default=sys.base_prefix)

# Default limits of one run (projects.sandbox.SandboxLimits).
SANDBOX_CPU_SECONDS = env.int("SANDBOX_CPU_SECONDS", default=120)
SANDBOX_MEMORY_MB = env.int("SANDBOX_MEMORY_MB", default=1024)
SANDBOX_PROCESSES = env.int("SANDBOX_PROCESSES", default=64)
SANDBOX_FILE_SIZE_MB = env.int("SANDBOX_FILE_SIZE_MB", default=64)
SANDBOX_OPEN_FILES = env.int("SANDBOX_OPEN_FILES", default=256)
SANDBOX_WALL_SECONDS = env.int("SANDBOX_WALL_SECONDS", default=300)
SANDBOX_OUTPUT_BYTES = env.int("SANDBOX_OUTPUT_BYTES", default=1_000_000)
SANDBOX_TMP_MB = env.int("SANDBOX_TMP_MB", default=64)
# Where project workspaces live on disk (default: MEDIA_ROOT/workspaces, see projects.workspace).
SANDBOX_WORKSPACE_ROOT = env.str("SANDBOX_WORKSPACE_ROOT", default="")

# --- Terminal -------------------------------------------------------------------------------
# On by default (development); production sets TERMINAL_ENABLED=false unless it wants users
# to have a shell in the sandbox.
TERMINAL_ENABLED = env.bool("TERMINAL_ENABLED", default=True)
TERMINAL_TICKET_TTL = env.int("TERMINAL_TICKET_TTL", default=60)
TERMINAL_IDLE_SECONDS = env.int("TERMINAL_IDLE_SECONDS", default=600)
TERMINAL_MAX_SECONDS = env.int("TERMINAL_MAX_SECONDS", default=3600)
TERMINAL_MAX_PER_USER = env.int("TERMINAL_MAX_PER_USER", default=3)
TERMINAL_OUTPUT_BYTES_PER_SECOND = env.int("TERMINAL_OUTPUT_BYTES_PER_SECOND", default=65536)
TERMINAL_SHELL = env.list("TERMINAL_SHELL", default=["/bin/bash", "-i"])

SANDBOX_BEAT_SCHEDULE: dict = {}
