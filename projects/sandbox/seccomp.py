"""The seccomp filter every sandboxed command runs under (bwrap ``--seccomp FD``).

It refuses what a confined command has no use for and what widens the kernel surface it can
reach: creating user namespaces (``unshare``/``clone`` with ``CLONE_NEWUSER``; ``clone3``
carries its flags in memory a filter cannot read, so it answers ``ENOSYS`` and the C library
falls back to ``clone``, whose flags the filter does see) and the kernel keyring
(``add_key``, ``request_key``, ``keyctl``). Everything else is allowed; a system call made
through another architecture's ABI (32-bit ``int 0x80``, x32) kills the process, so the
rules cannot be bypassed by calling the same function under another number.

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
# System calls refused outright, with the errno the caller sees.
REFUSED_CALLS = {
    "clone3": errno.ENOSYS,
    "add_key": errno.EPERM,
    "request_key": errno.EPERM,
    "keyctl": errno.EPERM,
}
# System calls refused when their first argument (the flags) asks for a new user namespace.
REFUSED_WITH_NEWUSER = ("unshare", "clone")


@functools.lru_cache(maxsize=1)
def seccomp_program() -> bytes:
    """The compiled BPF program (raw ``struct sock_filter`` array), built once."""
    import pyseccomp

    rules = pyseccomp.SyscallFilter(pyseccomp.ALLOW)
    for name, code in REFUSED_CALLS.items():
        rules.add_rule(pyseccomp.ERRNO(code), name)
    newuser = pyseccomp.Arg(0, pyseccomp.MASKED_EQ, CLONE_NEWUSER, CLONE_NEWUSER)
    for name in REFUSED_WITH_NEWUSER:
        rules.add_rule(pyseccomp.ERRNO(errno.EPERM), name, newuser)
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
