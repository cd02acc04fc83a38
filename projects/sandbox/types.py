"""What the sandbox takes and gives: limits, results, modes, and its one error."""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field

from django.conf import settings
from rest_framework import status

from common.errors import ApplicationError

MODE_BUBBLEWRAP = "bubblewrap"
MODE_UNSAFE_LOCAL = "unsafe-local"
# Where the workspace appears inside the sandbox.
SANDBOX_WORKDIR = "/workspace"


class SandboxUnavailable(ApplicationError):
    """No sandbox can run here: ``bwrap`` is missing or the process cannot drop privileges."""

    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    code = "sandbox_unavailable"


def _mb(value: int) -> int:
    return value * 1024 * 1024


@dataclass
class SandboxLimits:
    """Limits of one sandboxed command; each default comes from ``SANDBOX_*`` settings."""

    cpu_seconds: int = field(default_factory=lambda: settings.SANDBOX_CPU_SECONDS)
    memory_mb: int = field(default_factory=lambda: settings.SANDBOX_MEMORY_MB)
    processes: int = field(default_factory=lambda: settings.SANDBOX_PROCESSES)
    file_size_mb: int = field(default_factory=lambda: settings.SANDBOX_FILE_SIZE_MB)
    open_files: int = field(default_factory=lambda: settings.SANDBOX_OPEN_FILES)
    wall_seconds: float = field(default_factory=lambda: settings.SANDBOX_WALL_SECONDS)
    output_bytes: int = field(default_factory=lambda: settings.SANDBOX_OUTPUT_BYTES)
    tmp_mb: int = field(default_factory=lambda: settings.SANDBOX_TMP_MB)
    total_memory_mb: int = field(default_factory=lambda: settings.SANDBOX_TOTAL_MEMORY_MB)


@dataclass
class SandboxResult:
    """What a sandboxed command did. ``mode`` says whether it was really confined."""

    exit_code: int
    stdout: str
    stderr: str
    timed_out: bool
    truncated: bool
    mode: str
    duration_ms: int
    # Set when the sandbox ended the run for a limit it watches itself ("memory").
    killed_for: str = ""


# --- Mode and availability -----------------------------------------------------------------


def sandbox_mode() -> str:
    """``"bubblewrap"`` or ``"unsafe-local"`` (only when set explicitly in the settings)."""
    return str(settings.SANDBOX_MODE)


def _bwrap_path() -> str | None:
    return shutil.which(settings.SANDBOX_BWRAP)


def sandbox_ensure_available() -> str:
    """The mode commands will run in, or ``SandboxUnavailable`` with the reason and the fix."""
    mode = sandbox_mode()
    if mode == MODE_UNSAFE_LOCAL:
        return mode
    if _bwrap_path() is None:
        raise SandboxUnavailable(
            f"The sandbox needs bubblewrap ('{settings.SANDBOX_BWRAP}' is not on PATH): "
            "install it (apt-get install -y bubblewrap). Generated code is never run "
            "unconfined unless SANDBOX_MODE=unsafe-local is set explicitly."
        )
    for tool in ("prlimit", "setpriv") if _privileged() else ("prlimit",):
        if shutil.which(tool) is None:
            raise SandboxUnavailable(f"The sandbox needs '{tool}' (util-linux) on PATH.")
    return mode


def _privileged() -> bool:
    """Root launches each run under a uid of its own; anyone else shares their own uid."""
    return os.geteuid() == 0
