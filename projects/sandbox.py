"""The sandbox: generated code runs here, confined, never on the host unconfined.

How a command is launched (``bubblewrap`` mode; the web and worker processes run as root)::

    prlimit --cpu --as --nproc --fsize --nofile --core=0 --
      bwrap --unshare-ipc --unshare-pid --unshare-net --unshare-uts --unshare-cgroup-try
            --new-session --die-with-parent  (read-only /usr, toolchain and a minimal /etc;
            the workspace read-write at /workspace; a size-capped tmpfs at /tmp and /dev/shm;
            nothing else) --clearenv --
        setpriv --reuid=U --regid=G --clear-groups --no-new-privs --inh-caps=-all
                --bounding-set=-all --
          COMMAND

Why this order (observed on this machine, bubblewrap 0.8.0 as root, cgroup v1 not
delegated): a process-count rlimit does not bind root, and bwrap's ``--uid`` alone leaves
the real uid root outside. So the command runs under a real unprivileged uid ``U`` of the
host, taken per run from a pool (``SANDBOX_UID_BASE`` ..), which makes ``RLIMIT_NPROC``
bind and keeps one run's fork bomb from starving another run. bwrap runs as root (no user
namespace) only to build the mounts, which also lets it mount a toolchain that lives under
a directory the sandbox uid could not traverse (``/root/.pyenv``); it hands the command
only ``CAP_SETUID``/``CAP_SETGID``, which setpriv drops with every other capability before
the command starts (``no_new_privs`` too, so setuid binaries stay powerless).

Wall time: bash retries a failing fork, so the wall-clock limit is what ends a fork bomb.
On timeout the whole tree dies: bwrap is killed (its pid-namespace init dies with it via
``--die-with-parent``, which kills every process of the namespace), and then every process
still owned by the run's uid is killed with ``kill(-1)`` from that uid, until none is left.

When the process is not root (the Docker image runs as ``app``), bwrap runs unprivileged
instead: ``--unshare-all --unshare-user --disable-userns``, the command keeps that uid
inside its own user namespace, and the process-count limit is counted on top of what
that uid already runs (so it binds, but is shared with the app's own processes); the
per-run uids and the uid sweep need root.

Known gap in root mode: without a user namespace of its own, the command may create one
(``unshare -U``); that grants nothing on the host (the mounts it sees stay locked) but
widens the kernel surface it can reach.

Without ``bwrap`` nothing runs (``SandboxUnavailable``) unless ``SANDBOX_MODE=unsafe-local``
is set explicitly; then the command runs directly on the host with the rlimits only, and
every result says ``mode == "unsafe-local"``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import os
import selectors
import shutil
import signal
import stat
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from django.conf import settings
from rest_framework import status

from common.errors import ApplicationError
from common.logging import get_logger

logger = get_logger(__name__)

MODE_BUBBLEWRAP = "bubblewrap"
MODE_UNSAFE_LOCAL = "unsafe-local"
# Where the workspace appears inside the sandbox.
SANDBOX_WORKDIR = "/workspace"
# The uid the sandbox's own /etc/passwd names (cosmetic: ``id`` and prompts show "sandbox").
_ETC_FILES = (
    "/etc/alternatives",
    "/etc/ld.so.cache",
    "/etc/ld.so.conf",
    "/etc/ld.so.conf.d",
    "/etc/localtime",
    "/etc/nsswitch.conf",
    "/etc/bash.bashrc",
    "/etc/profile",
    "/etc/inputrc",
    "/etc/terminfo",
    "/etc/mime.types",
)
_MERGED_USR = ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
_KILL_ROUNDS = 50


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


# --- The uid pool --------------------------------------------------------------------------


@contextlib.contextmanager
def _uid_lease() -> Iterator[int]:
    """Hold one uid of the pool for the duration of a run (an flock per uid).

    flock is released by the kernel when the holder dies, so a crashed worker never leaks
    a uid. The lock file descriptor is not inherited by the command (close_fds).
    """
    slot_dir = Path(settings.SANDBOX_SLOT_DIR)
    slot_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    base, count = settings.SANDBOX_UID_BASE, settings.SANDBOX_UID_COUNT
    start = int.from_bytes(os.urandom(2), "big") % count
    deadline = time.monotonic() + 30
    while True:
        for offset in range(count):
            uid = base + (start + offset) % count
            fd = os.open(slot_dir / f"{uid}.lock", os.O_CREAT | os.O_RDWR | os.O_CLOEXEC, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                continue
            try:
                # A uid whose processes are still alive (a previous holder died mid-run)
                # is swept before it is handed out again.
                kill_uid(uid)
                yield uid
            finally:
                kill_uid(uid)
                fcntl.flock(fd, fcntl.LOCK_UN)
                os.close(fd)
            return
        if time.monotonic() > deadline:
            raise SandboxUnavailable("Every sandbox uid is busy; try again later.")
        time.sleep(0.2)


def sandbox_gid() -> int:
    """The group every sandbox uid runs with; workspaces are group-writable by it."""
    return int(settings.SANDBOX_UID_BASE)


def processes_of_uid(uid: int) -> list[int]:
    """Pids whose real uid is ``uid`` (from /proc)."""
    pids = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/status", encoding="ascii", errors="replace") as fh:
                for line in fh:
                    if line.startswith("Uid:"):
                        if int(line.split()[1]) == uid:
                            pids.append(int(entry.name))
                        break
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
    return pids


def kill_uid(uid: int) -> None:
    """Kill every process of ``uid`` (``kill(-1)`` sent from that uid), until none is left."""
    if os.geteuid() != 0 or uid < int(settings.SANDBOX_UID_BASE):
        return
    for _ in range(_KILL_ROUNDS):
        if not processes_of_uid(uid):
            return
        with contextlib.suppress(subprocess.SubprocessError, OSError):
            subprocess.run(  # noqa: S603 - fixed argv, numeric uid from our own pool
                [
                    shutil.which("setpriv") or "/usr/bin/setpriv",
                    f"--reuid={uid}",
                    f"--regid={uid}",
                    "--clear-groups",
                    "--",
                    shutil.which("kill") or "/usr/bin/kill",
                    "-KILL",
                    "-1",
                ],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                timeout=5,
                check=False,
            )
        time.sleep(0.05)
    logger.warning("sandbox.uid_not_cleared", uid=uid, pids=processes_of_uid(uid)[:20])


# --- Building the command line --------------------------------------------------------------


def _hand_over_fd(fd: int, gid: int) -> None:
    st = os.fstat(fd)
    if st.st_gid != gid:
        os.fchown(fd, -1, gid)
    extra = stat.S_IRGRP | stat.S_IWGRP
    if stat.S_ISDIR(st.st_mode):
        extra |= stat.S_IXGRP | stat.S_ISGID
    elif st.st_mode & stat.S_IXUSR:
        extra |= stat.S_IXGRP
    if (st.st_mode & extra) != extra:
        os.fchmod(fd, stat.S_IMODE(st.st_mode) | extra)


def _workspace_hand_over(workspace: Path, gid: int) -> None:
    """Make the tree group-owned by the sandbox group and group-writable (dirs setgid).

    Each run has its own uid but every run has the same group, so files one run (or a
    terminal) created stay writable by the next one on the same workspace. The tree may
    hold what earlier sandboxed code left (symlinks to host paths, swapped directories),
    so it is walked by directory descriptors and every entry is changed through a
    descriptor opened with ``O_NOFOLLOW``: root never follows a link the sandbox made.
    """
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
    for _root, dirs, files, root_fd in os.fwalk(workspace, follow_symlinks=False):
        _hand_over_fd(root_fd, gid)
        for name in files + dirs:
            try:
                fd = os.open(name, flags, dir_fd=root_fd)
            except OSError:
                continue  # a symlink (ELOOP), a socket, or gone meanwhile
            try:
                if not stat.S_ISDIR(os.fstat(fd).st_mode):
                    _hand_over_fd(fd, gid)
            finally:
                os.close(fd)


def _ancestors(path: str) -> list[str]:
    parts = Path(path).parts[1:-1]
    return ["/" + "/".join(parts[: i + 1]) for i in range(len(parts))]


def _toolchain_dirs() -> list[str]:
    """Directories outside /usr holding the interpreter and the venv (mounted read-only)."""
    dirs: list[str] = []
    for candidate in (settings.SANDBOX_PYTHON_HOME, settings.SANDBOX_VENV):
        if not candidate:
            continue
        path = os.path.realpath(candidate)
        if path == "/usr" or path.startswith("/usr/") or not os.path.isdir(path):
            continue
        if path not in dirs:
            dirs.append(path)
        # The venv's python is a symlink into the interpreter's prefix: keep that path too.
        if candidate != path and candidate not in dirs:
            dirs.append(candidate)
    return dirs


def _venv_bin() -> str:
    return os.path.join(settings.SANDBOX_VENV, "bin")


def _env_for(env: dict[str, str] | None, *, home: str) -> dict[str, str]:
    base = {
        "PATH": f"{_venv_bin()}:/usr/local/bin:/usr/bin:/bin",
        "HOME": home,
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONUNBUFFERED": "1",
        "PYTHONNOUSERSITE": "1",
        "TMPDIR": "/tmp",  # noqa: S108 - the sandbox's own tmpfs
        "USER": "sandbox",
        "LOGNAME": "sandbox",
    }
    for key, value in (env or {}).items():
        if not key or "=" in key or "\x00" in key or "\x00" in value:
            raise ValueError(f"Invalid environment variable name or value: {key!r}.")
        base[key] = value
    return base


def _prlimit_args(limits: SandboxLimits) -> list[str]:
    cpu = max(1, int(limits.cpu_seconds))
    return [
        "prlimit",
        f"--cpu={cpu}:{cpu + 1}",
        f"--as={_mb(limits.memory_mb)}",
        f"--nproc={limits.processes}",
        f"--fsize={_mb(limits.file_size_mb)}",
        f"--nofile={limits.open_files}",
        "--core=0",
        "--",
    ]


def _oom_first() -> list[str]:
    """Make the run the kernel's first choice when memory runs out.

    ``RLIMIT_AS`` bounds each process, not their sum; cgroups that would bound the sum are
    not ours to count on here, so if many processes of a run together exhaust the host's
    memory, the OOM killer takes them rather than the database or the workers.
    """
    choom = shutil.which("choom")
    return [choom, "-n", "1000", "--"] if choom else []


def _bwrap_args(
    *,
    workspace: Path,
    uid: int,
    gid: int,
    etc_dir: Path,
    limits: SandboxLimits,
    env: dict[str, str],
    privileged: bool = True,
) -> list[str]:
    bwrap = _bwrap_path() or "bwrap"
    if privileged:
        # No user namespace: the command must keep a real, unprivileged uid of the host.
        namespaces = ["--unshare-ipc", "--unshare-pid", "--unshare-net", "--unshare-uts"]
        namespaces += ["--unshare-cgroup-try", "--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID"]
    else:
        namespaces = [
            "--unshare-all",
            "--unshare-user",
            "--disable-userns",
            "--uid",
            str(uid),
            "--gid",
            str(gid),
        ]
    args = [
        bwrap,
        *namespaces,
        "--hostname",
        "sandbox",
        "--new-session",
        "--die-with-parent",
        "--ro-bind",
        "/usr",
        "/usr",
    ]
    for link in _MERGED_USR:
        if os.path.islink(link):
            args += ["--symlink", os.readlink(link), link]
        elif os.path.isdir(link):
            args += ["--ro-bind", link, link]
    args += ["--perms", "0755", "--dir", "/etc"]
    for name in _ETC_FILES:
        if os.path.exists(name):
            args += ["--ro-bind", name, name]
    for name in ("passwd", "group", "hosts", "hostname"):
        args += ["--ro-bind", str(etc_dir / name), f"/etc/{name}"]
    tmp_size = str(_mb(limits.tmp_mb))
    args += [
        "--proc",
        "/proc",
        "--dev",
        "/dev",
        "--perms",
        "1777",
        "--size",
        tmp_size,
        "--tmpfs",
        "/tmp",  # noqa: S108 - a private, size-capped tmpfs
        "--perms",
        "1777",
        "--size",
        tmp_size,
        "--tmpfs",
        "/dev/shm",  # noqa: S108 - a private, size-capped tmpfs
    ]
    # After the tmpfs mounts, so a toolchain that lives under /tmp (a CI checkout) is
    # mounted inside the sandbox's /tmp rather than hidden by it.
    made: set[str] = {"/etc", "/tmp", "/dev", "/proc"}  # noqa: S108
    for path in _toolchain_dirs():
        for parent in _ancestors(path):
            if parent not in made:
                args += ["--perms", "0755", "--dir", parent]
                made.add(parent)
        args += ["--ro-bind", path, path]
        made.add(path)
    args += [
        "--bind",
        str(workspace),
        SANDBOX_WORKDIR,
        "--chdir",
        SANDBOX_WORKDIR,
        "--remount-ro",
        "/",
        "--clearenv",
    ]
    for key, value in env.items():
        args += ["--setenv", key, value]
    if not privileged:
        return [*args, "--"]
    args += [
        "--",
        "setpriv",
        f"--reuid={uid}",
        f"--regid={gid}",
        "--clear-groups",
        "--no-new-privs",
        "--inh-caps=-all",
        "--bounding-set=-all",
        "--",
    ]
    return args


def _write_etc(etc_dir: Path, uid: int, gid: int) -> None:
    (etc_dir / "passwd").write_text(
        f"root:x:0:0:root:/nonexistent:/usr/sbin/nologin\n"
        f"sandbox:x:{uid}:{gid}:sandbox:{SANDBOX_WORKDIR}:/bin/bash\n"
        "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n"
    )
    (etc_dir / "group").write_text(f"root:x:0:\nsandbox:x:{gid}:\nnogroup:x:65534:\n")
    (etc_dir / "hosts").write_text("127.0.0.1\tlocalhost sandbox\n::1\tlocalhost\n")
    (etc_dir / "hostname").write_text("sandbox\n")
    for child in etc_dir.iterdir():
        child.chmod(0o644)


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
            umask=0o002,
            env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"},
        )
        logger.info("sandbox.started", uid=uid, pid=popen.pid, argv=argv[:3])
        return SandboxProcess(popen=popen, mode=mode, uid=uid if privileged else None, stack=stack)
    except BaseException:
        stack.close()
        raise


def _collect(proc: SandboxProcess, limits: SandboxLimits) -> tuple[bytes, bytes, bool, bool]:
    """Read stdout and stderr until both close or the wall time is up."""
    deadline = time.monotonic() + float(limits.wall_seconds)
    budget = int(limits.output_bytes)
    chunks: dict[int, list[bytes]] = {1: [], 2: []}
    truncated = timed_out = False
    sel = selectors.DefaultSelector()
    assert proc.popen.stdout is not None and proc.popen.stderr is not None  # noqa: S101
    sel.register(proc.popen.stdout, selectors.EVENT_READ, 1)
    sel.register(proc.popen.stderr, selectors.EVENT_READ, 2)
    try:
        while sel.get_map():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                timed_out = True
                break
            for key, _ in sel.select(timeout=min(remaining, 0.5)):
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
        if not timed_out:
            try:
                proc.popen.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                timed_out = True
    finally:
        sel.close()
    return b"".join(chunks[1]), b"".join(chunks[2]), truncated, timed_out


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
            out, err, truncated, timed_out = _collect(proc, limits)
        finally:
            if proc.popen.poll() is None:
                proc.kill()
            for stream in (proc.popen.stdout, proc.popen.stderr):
                if stream is not None:
                    stream.close()
        exit_code = proc.popen.wait()
        mode = proc.mode
    duration_ms = int((time.monotonic() - started) * 1000)
    if timed_out:
        err += f"\n[sandbox] wall time limit of {limits.wall_seconds}s reached; killed.\n".encode()
    result = SandboxResult(
        exit_code=exit_code,
        stdout=out.decode("utf-8", errors="replace"),
        stderr=err.decode("utf-8", errors="replace"),
        timed_out=timed_out,
        truncated=truncated,
        mode=mode,
        duration_ms=duration_ms,
    )
    logger.info(
        "sandbox.finished",
        exit_code=exit_code,
        timed_out=timed_out,
        truncated=truncated,
        mode=mode,
        duration_ms=duration_ms,
    )
    return result
