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

System calls: every command runs under a seccomp filter (``seccomp.py``, handed to bwrap
with ``--seccomp FD``) that refuses new user namespaces (``unshare``/``clone`` with
``CLONE_NEWUSER``; ``clone3`` answers ``ENOSYS``), io_uring, ``bpf``, ``perf_event_open``,
``userfaultfd``, ``kexec_*``, the kernel keyring, mounting, and ``ptrace`` attaching to a
running process, so the command cannot widen the kernel surface it reaches.

Disk and memory: the workspace is a size-capped filesystem of its own (``SANDBOX_WORKSPACE_MB``,
see ``projects.workspace``), /tmp and /dev/shm are size-capped tmpfs, and the resident
memory of all the run's processes together is summed (they are exactly its uid's) every half
second; past ``SANDBOX_TOTAL_MEMORY_MB`` the run is killed (``killed_for == "memory"``).

``sandbox_status()`` answers /health: bwrap and util-linux present, the sandbox environment's
tools, the filter, and one real confined start, cached ``SANDBOX_STATUS_CACHE_SECONDS``.

Without ``bwrap`` nothing runs (``SandboxUnavailable``) unless ``SANDBOX_MODE=unsafe-local``
is set explicitly; then the command runs directly on the host with the rlimits only, and
every result says ``mode == "unsafe-local"``.
"""

from .process import SandboxProcess, sandbox_run, sandbox_spawn
from .status import SandboxStatus, sandbox_status, sandbox_status_forget
from .types import (
    MODE_BUBBLEWRAP,
    MODE_UNSAFE_LOCAL,
    SANDBOX_WORKDIR,
    SandboxLimits,
    SandboxResult,
    SandboxUnavailable,
    sandbox_ensure_available,
    sandbox_mode,
)
from .uids import kill_uid, processes_of_uid, sandbox_gid

__all__ = [
    "MODE_BUBBLEWRAP",
    "MODE_UNSAFE_LOCAL",
    "SANDBOX_WORKDIR",
    "SandboxLimits",
    "SandboxProcess",
    "SandboxResult",
    "SandboxStatus",
    "SandboxUnavailable",
    "kill_uid",
    "processes_of_uid",
    "sandbox_ensure_available",
    "sandbox_gid",
    "sandbox_mode",
    "sandbox_run",
    "sandbox_spawn",
    "sandbox_status",
    "sandbox_status_forget",
]
