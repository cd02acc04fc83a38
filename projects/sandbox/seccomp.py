"""The seccomp filter every sandboxed command runs under (bwrap ``--seccomp FD``).

It refuses what a confined command has no use for and what widens the kernel surface it can
reach:

- creating user namespaces (``unshare``/``clone`` with ``CLONE_NEWUSER``: ``EPERM``;
  ``clone3`` carries its flags in memory a filter cannot read, so it answers ``ENOSYS`` and
  the C library falls back to ``clone``, whose flags the filter does see);
- whole families of calls that are large kernel attack surface and that tests, linters and
  a shell never need: io_uring (``io_uring_setup``/``_enter``/``_register``), ``bpf``,
  ``perf_event_open``, ``userfaultfd``, ``kexec_load``/``kexec_file_load``, the kernel
  keyring (``add_key``, ``request_key``, ``keyctl``), and mounting (``mount``, ``umount2``,
  ``pivot_root`` and the new mount API: ``open_tree``, ``move_mount``, ``fsopen``,
  ``fsconfig``, ``fsmount``, ``fspick``, ``mount_setattr``). Each answers ``ENOSYS``, "no
  such call here": programs that probe for io_uring or userfaultfd fall back as on a kernel
  without them, and the answer is the filter's own (the kernel implements every one of these
  calls, so it never gives ``ENOSYS`` for them; it would mostly give ``EPERM``, which is
  why a test can tell the two apart);
- ``ptrace`` of a process that did not ask for it: ``PTRACE_ATTACH`` and ``PTRACE_SEIZE``
  answer ``EPERM``. ``ptrace`` itself stays, so a debugger may still start a program under
  it (the child's ``PTRACE_TRACEME``), which is tracing its own child. A filter cannot see
  whose process a pid names, so it refuses attaching to any: Yama
  (``kernel.yama.ptrace_scope``), which would confine attaching to descendants, is missing on
  some hosts (this development machine among them), and the per-run uid keeps other runs'
  processes out of reach in any case.

Everything else is allowed; a system call made through another architecture's ABI (32-bit
``int 0x80``, x32) kills the process, so the rules cannot be bypassed by calling the same
function under another number.

The program is compiled by libseccomp (through ``pyseccomp``, its ctypes binding) once per
process and handed to bwrap in a sealed memory file.
"""

from __future__ import annotations

import errno
import fcntl
import functools
import os
import tempfile

CLONE_NEWUSER = 0x10000000
PTRACE_ATTACH = 16
PTRACE_SEIZE = 0x4206
# The errno of the calls refused outright: one the kernel never gives for them.
REFUSED = errno.ENOSYS
# System calls refused outright, each answering ``REFUSED``.
REFUSED_CALLS = (
    "clone3",
    "io_uring_setup",
    "io_uring_enter",
    "io_uring_register",
    "bpf",
    "perf_event_open",
    "userfaultfd",
    "kexec_load",
    "kexec_file_load",
    "add_key",
    "request_key",
    "keyctl",
    "mount",
    "umount2",
    "pivot_root",
    "open_tree",
    "move_mount",
    "fsopen",
    "fsconfig",
    "fsmount",
    "fspick",
    "mount_setattr",
)
# System calls refused (``EPERM``) when their first argument (the flags) asks for a new user
# namespace.
REFUSED_WITH_NEWUSER = ("unshare", "clone")
# ``ptrace`` requests refused (``EPERM``): taking hold of a process that did not ask for it.
REFUSED_PTRACE_REQUESTS = (PTRACE_ATTACH, PTRACE_SEIZE)


@functools.lru_cache(maxsize=1)
def seccomp_program() -> bytes:
    """The compiled BPF program (raw ``struct sock_filter`` array), built once."""
    import pyseccomp

    rules = pyseccomp.SyscallFilter(pyseccomp.ALLOW)
    for name in REFUSED_CALLS:
        rules.add_rule(pyseccomp.ERRNO(REFUSED), name)
    newuser = pyseccomp.Arg(0, pyseccomp.MASKED_EQ, CLONE_NEWUSER, CLONE_NEWUSER)
    for name in REFUSED_WITH_NEWUSER:
        rules.add_rule(pyseccomp.ERRNO(errno.EPERM), name, newuser)
    for request in REFUSED_PTRACE_REQUESTS:
        rules.add_rule(
            pyseccomp.ERRNO(errno.EPERM), "ptrace", pyseccomp.Arg(0, pyseccomp.EQ, request)
        )
    with tempfile.TemporaryFile() as fh:
        rules.export_bpf(fh)
        fh.seek(0)
        return fh.read()


def seccomp_fd() -> int:
    """A readable descriptor (at offset 0) holding the program; the caller closes it.

    A sealed memfd where the kernel has them, so nothing can change the program between
    here and bwrap reading it.
    """
    program = seccomp_program()
    fd = os.memfd_create("aiflow-seccomp", os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
    try:
        os.write(fd, program)
        os.lseek(fd, 0, os.SEEK_SET)
        fcntl.fcntl(
            fd,
            fcntl.F_ADD_SEALS,
            fcntl.F_SEAL_WRITE | fcntl.F_SEAL_GROW | fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_SEAL,
        )
    except BaseException:
        os.close(fd)
        raise
    return fd
