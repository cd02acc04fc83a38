"""Starting a command in the sandbox, collecting what it does, and ending it whole."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import selectors
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from typing import IO, Any

from common.logging import get_logger

from .command import (
    _bwrap_args,
    _env_for,
    _oom_first,
    _prlimit_args,
    _workspace_hand_over,
    _write_etc,
)
from .seccomp import seccomp_fd
from .types import (
    MODE_UNSAFE_LOCAL,
    SANDBOX_WORKDIR,
    SandboxLimits,
    SandboxResult,
    _privileged,
    sandbox_ensure_available,
)
from .uids import _uid_lease, kill_uid, processes_of_uid, resident_bytes_of_uid, sandbox_gid

logger = get_logger(__name__)

# --- Processes -------------------------------------------------------------------------------


class SandboxProcess:
    """A command started in the sandbox; ``kill()`` ends it and everything it started.

    Used as a context manager (``with sandbox_spawn(...) as proc``) so the uid lease and the
    private /etc are always released, whatever happened.
    """

    def __init__(
        self,
        *,
        popen: subprocess.Popen[bytes],
        mode: str,
        uid: int | None,
        stack: contextlib.ExitStack,
    ):
        self.popen = popen
        self.mode = mode
        self.uid = uid
        self._stack = stack

    @property
    def pid(self) -> int:
        return self.popen.pid

    def over_memory(self, limit_mb: int) -> bool:
        """True when the run's processes together hold more than ``limit_mb`` resident.

        Each run has a uid of its own, so its processes are exactly that uid's: a bound on
        their sum (``RLIMIT_AS`` only bounds each one) without cgroups.
        """
        if self.uid is None or limit_mb <= 0:
            return False
        return resident_bytes_of_uid(self.uid) > limit_mb * 1024 * 1024

    def kill(self) -> None:
        """SIGKILL the launcher's process group, then every process of the run's uid."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.popen.pid, signal.SIGKILL)
        with contextlib.suppress(ProcessLookupError):
            self.popen.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(timeout=10)
        if self.uid is not None:
            kill_uid(self.uid)

    def close(self) -> None:
        """Kill what is left and release the uid lease."""
        try:
            if self.popen.poll() is None:
                self.kill()
            elif self.uid is not None:
                kill_uid(self.uid)
        finally:
            self._stack.close()

    def __enter__(self) -> SandboxProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def sandbox_spawn(
    *,
    workspace: Path,
    argv: list[str],
    limits: SandboxLimits | None = None,
    env: dict[str, str] | None = None,
    stdin: int | IO[Any] | None = subprocess.DEVNULL,
    stdout: int | IO[Any] | None = subprocess.PIPE,
    stderr: int | IO[Any] | None = subprocess.PIPE,
    tty: bool = False,
) -> SandboxProcess:
    """Start ``argv`` in the sandbox on ``workspace`` (mounted read-write at /workspace).

    With ``tty=True`` the command is started by ``setsid --ctty`` inside the sandbox so a
    shell on a PTY (given as stdin/stdout/stderr) gets it as its controlling terminal
    (job control, Ctrl-C), while bwrap's ``--new-session`` still cuts it off from ours.
    """
    if not argv:
        raise ValueError("argv must not be empty.")
    mode = sandbox_ensure_available()
    limits = limits or SandboxLimits()
    workspace = Path(workspace).resolve()
    if not workspace.is_dir():
        raise ValueError(f"Workspace {workspace} is not a directory.")
    stack = contextlib.ExitStack()
    try:
        if mode == MODE_UNSAFE_LOCAL:
            logger.warning("sandbox.unsafe_local", argv=argv[:3])
            command = [*(_prlimit_args(limits) if shutil.which("prlimit") else []), *argv]
            popen = subprocess.Popen(  # noqa: S603 - unsafe-local was chosen explicitly
                command,
                cwd=workspace,
                env=_env_for(env, home=str(workspace)),
                stdin=stdin,
                stdout=stdout,
                stderr=stderr,
                start_new_session=True,
                close_fds=True,
            )
            return SandboxProcess(popen=popen, mode=mode, uid=None, stack=stack)
        privileged = _privileged()
        if privileged:
            uid = stack.enter_context(_uid_lease())
            gid = sandbox_gid()
            _workspace_hand_over(workspace, gid)
        else:
            # Not root: the command keeps this process's uid (inside its own user namespace),
            # so the process-count limit is counted against that uid: allow what already
            # runs under it plus the run's own budget.
            uid, gid = os.getuid(), os.getgid()
            limits = dataclasses.replace(
                limits, processes=len(processes_of_uid(uid)) + int(limits.processes)
            )
        etc_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="aiflow-etc-")))
        etc_dir.chmod(0o755)
        _write_etc(etc_dir, uid, gid)
        inner = ["setsid", "--ctty", "--wait", *argv] if tty else list(argv)
        # bwrap reads the filter before it starts the command; our copy goes once it runs.
        filter_fd = seccomp_fd()
        try:
            command = [
                *_oom_first(),
                *_prlimit_args(limits),
                *_bwrap_args(
                    workspace=workspace,
                    uid=uid,
                    gid=gid,
                    etc_dir=etc_dir,
                    limits=limits,
                    env=_env_for(env, home=SANDBOX_WORKDIR if tty else "/tmp"),  # noqa: S108
                    privileged=privileged,
                    seccomp_fd=filter_fd,
                ),
                *inner,
            ]
            popen = subprocess.Popen(  # noqa: S603 - argv is confined by bwrap, see module doc
                command,
                stdin=stdin,
                stdout=stdout,
                stderr=stderr,
                start_new_session=True,
                close_fds=True,
                pass_fds=(filter_fd,),
                umask=0o002,
                env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"},
            )
        finally:
            os.close(filter_fd)
        logger.info("sandbox.started", uid=uid, pid=popen.pid, argv=argv[:3])
        return SandboxProcess(popen=popen, mode=mode, uid=uid if privileged else None, stack=stack)
    except BaseException:
        stack.close()
        raise


# How often a run's total resident memory is summed (a scan of /proc).
_MEMORY_CHECK_SECONDS = 0.5


@dataclasses.dataclass
class _Collected:
    stdout: bytes
    stderr: bytes
    truncated: bool
    timed_out: bool
    killed_for: str


def _collect(proc: SandboxProcess, limits: SandboxLimits) -> _Collected:
    """Read stdout and stderr until both close, the wall time is up or memory runs over."""
    deadline = time.monotonic() + float(limits.wall_seconds)
    next_memory_check = time.monotonic() + _MEMORY_CHECK_SECONDS
    budget = int(limits.output_bytes)
    chunks: dict[int, list[bytes]] = {1: [], 2: []}
    truncated = timed_out = False
    killed_for = ""
    sel = selectors.DefaultSelector()
    assert proc.popen.stdout is not None and proc.popen.stderr is not None  # noqa: S101
    sel.register(proc.popen.stdout, selectors.EVENT_READ, 1)
    sel.register(proc.popen.stderr, selectors.EVENT_READ, 2)
    try:
        while sel.get_map() or proc.popen.poll() is None:
            now = time.monotonic()
            if now >= deadline:
                timed_out = True
                break
            if now >= next_memory_check:
                next_memory_check = now + _MEMORY_CHECK_SECONDS
                if proc.over_memory(int(limits.total_memory_mb)):
                    killed_for = "memory"
                    break
            if not sel.get_map():
                time.sleep(min(0.05, deadline - now))
                continue
            for key, _ in sel.select(timeout=min(deadline - now, _MEMORY_CHECK_SECONDS)):
                data = os.read(key.fd, 65536)
                if not data:
                    sel.unregister(key.fileobj)
                    continue
                # Past the budget the output is drained (so the command never blocks on a
                # full pipe) and dropped.
                keep = data[: max(0, budget)]
                budget -= len(data)
                if len(keep) < len(data):
                    truncated = True
                if keep:
                    chunks[key.data].append(keep)
    finally:
        sel.close()
    return _Collected(b"".join(chunks[1]), b"".join(chunks[2]), truncated, timed_out, killed_for)


def sandbox_run(
    *,
    workspace: Path,
    argv: list[str],
    limits: SandboxLimits | None = None,
    env: dict[str, str] | None = None,
) -> SandboxResult:
    """Run ``argv`` in the sandbox on ``workspace`` and return what it did.

    Never raises for what the command does (a crash, a timeout, a limit hit are results);
    raises ``SandboxUnavailable`` when no sandbox can run here.
    """
    limits = limits or SandboxLimits()
    started = time.monotonic()
    with sandbox_spawn(workspace=workspace, argv=argv, limits=limits, env=env) as proc:
        try:
            collected = _collect(proc, limits)
        finally:
            if proc.popen.poll() is None:
                proc.kill()
            for stream in (proc.popen.stdout, proc.popen.stderr):
                if stream is not None:
                    stream.close()
        exit_code = proc.popen.wait()
        mode = proc.mode
    duration_ms = int((time.monotonic() - started) * 1000)
    err = collected.stderr
    if collected.timed_out:
        err += f"\n[sandbox] wall time limit of {limits.wall_seconds}s reached; killed.\n".encode()
    if collected.killed_for == "memory":
        err += (
            f"\n[sandbox] memory limit of {limits.total_memory_mb} MB for the whole run "
            "reached; killed.\n"
        ).encode()
    result = SandboxResult(
        exit_code=exit_code,
        stdout=collected.stdout.decode("utf-8", errors="replace"),
        stderr=err.decode("utf-8", errors="replace"),
        timed_out=collected.timed_out,
        truncated=collected.truncated,
        mode=mode,
        duration_ms=duration_ms,
        killed_for=collected.killed_for,
    )
    logger.info(
        "sandbox.finished",
        exit_code=exit_code,
        timed_out=collected.timed_out,
        killed_for=collected.killed_for,
        truncated=collected.truncated,
        mode=mode,
        duration_ms=duration_ms,
    )
    return result
