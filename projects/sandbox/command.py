"""The command line that confines a run: prlimit, bwrap's mounts and namespaces, setpriv."""

from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path

from django.conf import settings

from .types import SANDBOX_WORKDIR, SandboxLimits, _bwrap_path, _mb

# Host files of /etc the toolchain needs, mounted read-only (never shadow, never secrets).
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
    seccomp_fd: int | None = None,
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
    if seccomp_fd is not None:
        args += ["--seccomp", str(seccomp_fd)]
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
