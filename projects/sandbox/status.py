"""Whether the sandbox can run here, for ``/health``: cheap, cached, in plain words."""

from __future__ import annotations

import os
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings

from common.logging import get_logger

from .types import MODE_UNSAFE_LOCAL, SandboxLimits, SandboxUnavailable, sandbox_ensure_available

logger = get_logger(__name__)

# The tools the tester's checks run; a sandbox environment without them is not usable.
CHECK_TOOLS = ("python", "pytest", "ruff", "bandit")


@dataclass(frozen=True)
class SandboxStatus:
    """``ok`` when generated code can be run confined here; ``reason`` says why not (or how).

    ``problem`` names what failed in words safe to show anyone (``/health``), where
    ``reason`` may carry a path or a tool's message (logs, the operator).
    """

    ok: bool
    reason: str
    problem: str = ""


# What failed, in words that carry no host detail.
NOT_INSTALLED = "bubblewrap is not installed or not usable here"
ENVIRONMENT_INCOMPLETE = "the sandbox environment is incomplete (run make sandbox)"
FILTER_UNAVAILABLE = "the seccomp filter cannot be built"
CANNOT_START = "bubblewrap cannot start a sandbox"


_lock = threading.Lock()
_cached: tuple[float, SandboxStatus] | None = None


def _missing_tools() -> list[str]:
    bin_dir = Path(settings.SANDBOX_VENV) / "bin"
    return [tool for tool in CHECK_TOOLS if not os.access(bin_dir / tool, os.X_OK)]


def _smoke_run() -> SandboxStatus:
    """Start ``true`` in the sandbox: proves namespaces, mounts, the filter and the uid pool."""
    from .process import sandbox_run

    limits = SandboxLimits(wall_seconds=20, output_bytes=4096)
    with tempfile.TemporaryDirectory(prefix="aiflow-status-") as workspace:
        os.chmod(workspace, 0o700)  # the sandbox reaches it through its group
        result = sandbox_run(workspace=Path(workspace), argv=["true"], limits=limits)
    if result.exit_code != 0 or result.timed_out:
        detail = (result.stderr or result.stdout).strip().splitlines()[-1:] or ["no output"]
        return SandboxStatus(
            False, f"bubblewrap failed to start a command: {detail[0][:200]}", CANNOT_START
        )
    return SandboxStatus(True, "bubblewrap")


def _check() -> SandboxStatus:
    try:
        mode = sandbox_ensure_available()
    except SandboxUnavailable as exc:
        return SandboxStatus(False, str(exc.detail), NOT_INSTALLED)
    missing = _missing_tools()
    if missing:
        return SandboxStatus(
            False,
            f"The sandbox environment {settings.SANDBOX_VENV} lacks {', '.join(missing)}: "
            "build it with `make sandbox`.",
            ENVIRONMENT_INCOMPLETE,
        )
    if mode == MODE_UNSAFE_LOCAL:
        return SandboxStatus(True, "unsafe-local: generated code runs unconfined (set explicitly)")
    try:
        from .seccomp import seccomp_program

        seccomp_program()
    except (ImportError, OSError, RuntimeError) as exc:
        return SandboxStatus(
            False, f"The seccomp filter cannot be built (libseccomp): {exc}", FILTER_UNAVAILABLE
        )
    try:
        return _smoke_run()
    except SandboxUnavailable as exc:
        return SandboxStatus(False, str(exc.detail), CANNOT_START)
    except OSError as exc:
        return SandboxStatus(
            False, f"The sandbox cannot start: {exc.strerror or exc}", CANNOT_START
        )


def sandbox_status() -> SandboxStatus:
    """The sandbox's state, checked at most once per ``SANDBOX_STATUS_CACHE_SECONDS``.

    Checks what a run needs: bubblewrap and util-linux on PATH, the sandbox environment's
    tools, the seccomp filter, and one real confined start of ``true``. The answer is kept
    in process memory; concurrent callers wait for the one check in flight rather than
    starting their own.
    """
    global _cached
    now = time.monotonic()
    with _lock:
        if _cached is not None and now - _cached[0] < float(settings.SANDBOX_STATUS_CACHE_SECONDS):
            return _cached[1]
        status = _check()
        if not status.ok:
            logger.warning("sandbox.status_failing", reason=status.reason)
        _cached = (time.monotonic(), status)
        return status


def sandbox_status_forget() -> None:
    """Drop the cached answer (the next call checks again)."""
    global _cached
    with _lock:
        _cached = None
