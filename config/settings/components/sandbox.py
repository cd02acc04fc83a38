"""Settings of the sandbox and the terminal, read from the environment.

The sandbox runs generated code under bubblewrap. Started by root, each run gets its own
unprivileged uid from a pool (``SANDBOX_UID_BASE`` .. ``SANDBOX_UID_BASE + SANDBOX_UID_COUNT
- 1``, group ``SANDBOX_UID_BASE``), so the process-count limit of one run never starves
another; started by another user, bwrap runs unprivileged under that user's uid. Without
``bwrap`` nothing runs, unless ``SANDBOX_MODE=unsafe-local`` is set explicitly; every
result then says ``mode: "unsafe-local"``.
"""

import sys

from django.core.exceptions import ImproperlyConfigured

from ..env import BASE_DIR, env

# The sandbox's own minimal environment (pytest, ruff, bandit and what generated code may
# import), built by `make sandbox` from requirements-sandbox.txt; else this process's own.
_SANDBOX_VENV_BUILT = BASE_DIR / ".venv-sandbox"
_SANDBOX_VENV_DEFAULT = str(_SANDBOX_VENV_BUILT) if _SANDBOX_VENV_BUILT.is_dir() else sys.prefix

# "bubblewrap" (confined; refuses to run without bwrap) or "unsafe-local" (runs generated code
# directly on the host with rlimits only; every result says so). Never unsafe-local in production.
SANDBOX_MODE = env.str("SANDBOX_MODE", default="bubblewrap")
if SANDBOX_MODE not in ("bubblewrap", "unsafe-local"):
    raise ImproperlyConfigured(
        f"SANDBOX_MODE must be 'bubblewrap' or 'unsafe-local', not {SANDBOX_MODE!r}."
    )
# The bubblewrap executable (name on PATH or absolute path).
SANDBOX_BWRAP = env.str("SANDBOX_BWRAP", default="bwrap")
# First uid of the pool the sandbox runs commands as when started by root; also their group.
SANDBOX_UID_BASE = env.int("SANDBOX_UID_BASE", default=200000)
# Number of uids in the pool: how many sandboxed commands may run at once on one host.
SANDBOX_UID_COUNT = env.int("SANDBOX_UID_COUNT", default=256)
if SANDBOX_UID_BASE < 1000 or SANDBOX_UID_COUNT < 1:
    raise ImproperlyConfigured("SANDBOX_UID_BASE must be >= 1000 and SANDBOX_UID_COUNT >= 1.")
# Directory of the lock files that hand out the pool's uids (one flock per uid).
SANDBOX_SLOT_DIR = env.str("SANDBOX_SLOT_DIR", default="/run/aiflow-sandbox")
# Python environment mounted read-only in the sandbox (pytest, ruff, bandit come from it); by
# default .venv-sandbox of the checkout (make sandbox), else the one this process runs in.
SANDBOX_VENV = env.str("SANDBOX_VENV", default=_SANDBOX_VENV_DEFAULT)
# Prefix of the interpreter that environment was made from, mounted read-only too.
SANDBOX_PYTHON_HOME = env.str("SANDBOX_PYTHON_HOME", default=sys.base_prefix)

# CPU seconds a sandboxed process may use (RLIMIT_CPU).
SANDBOX_CPU_SECONDS = env.int("SANDBOX_CPU_SECONDS", default=120)
# Address space of each sandboxed process in MB (RLIMIT_AS).
SANDBOX_MEMORY_MB = env.int("SANDBOX_MEMORY_MB", default=1024)
# Processes a sandboxed run may have at once (RLIMIT_NPROC under its own uid).
SANDBOX_PROCESSES = env.int("SANDBOX_PROCESSES", default=64)
# Largest file a sandboxed run may write, in MB (RLIMIT_FSIZE).
SANDBOX_FILE_SIZE_MB = env.int("SANDBOX_FILE_SIZE_MB", default=64)
# Open files per sandboxed process (RLIMIT_NOFILE).
SANDBOX_OPEN_FILES = env.int("SANDBOX_OPEN_FILES", default=256)
# Wall-clock seconds before a sandboxed run and everything it started is killed.
SANDBOX_WALL_SECONDS = env.int("SANDBOX_WALL_SECONDS", default=300)
# Bytes of stdout+stderr kept from a sandboxed run; the rest is drained and dropped.
SANDBOX_OUTPUT_BYTES = env.int("SANDBOX_OUTPUT_BYTES", default=1_000_000)
# Size in MB of the sandbox's private /tmp and /dev/shm (tmpfs, memory-backed).
SANDBOX_TMP_MB = env.int("SANDBOX_TMP_MB", default=64)
# Disk quota of one workspace in MB: each is a size-capped filesystem of its own (root only).
SANDBOX_WORKSPACE_MB = env.int("SANDBOX_WORKSPACE_MB", default=256)
# Resident memory in MB all processes of one sandboxed run may use together; over it the run
# is killed.
SANDBOX_TOTAL_MEMORY_MB = env.int("SANDBOX_TOTAL_MEMORY_MB", default=2048)
# Seconds the answer of sandbox_status() (for /health) is kept before it is checked again.
SANDBOX_STATUS_CACHE_SECONDS = env.float("SANDBOX_STATUS_CACHE_SECONDS", default=60.0)
# Where project workspaces live on disk; empty means MEDIA_ROOT/workspaces.
SANDBOX_WORKSPACE_ROOT = env.str("SANDBOX_WORKSPACE_ROOT", default="")
# The tester's security scan: "ruff" (its S rules, ruff's port of bandit's checks; a few
# milliseconds) or "bandit" (adds each finding's severity and confidence; about 0.15 CPU-s
# more per check round).
SANDBOX_SECURITY_SCANNER = env.str("SANDBOX_SECURITY_SCANNER", default="ruff")
if SANDBOX_SECURITY_SCANNER not in ("ruff", "bandit"):
    raise ImproperlyConfigured(
        f"SANDBOX_SECURITY_SCANNER must be 'ruff' or 'bandit', not {SANDBOX_SECURITY_SCANNER!r}."
    )

# --- Terminal -------------------------------------------------------------------------------
# The interactive terminal (a shell in the sandbox over WebSocket). On for development;
# production settings turn it off unless TERMINAL_ENABLED=true is set there.
TERMINAL_ENABLED = env.bool("TERMINAL_ENABLED", default=True)
# Seconds a terminal ticket stays valid (single use).
TERMINAL_TICKET_TTL = env.int("TERMINAL_TICKET_TTL", default=60)
# Seconds without input before a terminal is closed.
TERMINAL_IDLE_SECONDS = env.int("TERMINAL_IDLE_SECONDS", default=600)
# Longest a terminal session may last, in seconds.
TERMINAL_MAX_SECONDS = env.int("TERMINAL_MAX_SECONDS", default=3600)
# Terminals one user may have open at once.
TERMINAL_MAX_PER_USER = env.int("TERMINAL_MAX_PER_USER", default=3)
# Output a terminal sends at most, in bytes per second (the shell is paused beyond it).
TERMINAL_OUTPUT_BYTES_PER_SECOND = env.int("TERMINAL_OUTPUT_BYTES_PER_SECOND", default=65536)
# The shell a terminal runs (comma-separated argv).
TERMINAL_SHELL = env.list("TERMINAL_SHELL", default=["/bin/bash", "-i"])

# --- Event streams and run sockets ---------------------------------------------------------
# Open event streams (SSE and /ws/runs together) one user may hold at once; one more is a 429.
EVENTS_STREAMS_PER_USER = env.int("EVENTS_STREAMS_PER_USER", default=10)
# Seconds an event stream stays open without any new event (a run parked at the gate) before
# it ends cleanly; clients reconnect with Last-Event-ID.
EVENTS_STREAM_IDLE_SECONDS = env.float("EVENTS_STREAM_IDLE_SECONDS", default=900.0)
# Seconds a /ws/runs ticket stays valid (single use).
EVENTS_WS_TICKET_TTL = env.int("EVENTS_WS_TICKET_TTL", default=60)

# Nothing periodic: tickets expire in Redis by themselves, terminal leases likewise.
SANDBOX_BEAT_SCHEDULE: dict = {}
