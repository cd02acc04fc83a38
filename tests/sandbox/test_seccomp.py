"""The sandbox's seccomp filter, told apart from the kernel.

Each refused call is made twice in the same sandbox (same unprivileged uid, namespaces and
limits): under the real filter, and under a filter that allows everything. The first must
answer exactly the filter's errno; the second shows what the kernel itself answers, which is
never that errno. So a test fails when its rule is dropped from the filter even where the
kernel would refuse the call anyway (``mount`` as an unprivileged uid is ``EPERM`` from the
kernel too, which is why refused calls answer ``ENOSYS``). Where this kernel lacks a call altogether
(``kexec_load`` without ``CONFIG_KEXEC``) it answers ``ENOSYS`` itself and the live comparison
cannot tell the two apart; the compiled program is then read instruction by instruction
(``test_the_program_refuses_the_call_whatever_the_kernel``), as the kernel would run it.
"""

import errno
import fcntl
import os
import struct
from pathlib import Path
from typing import Any

import pytest

from projects.sandbox import sandbox_run
from projects.sandbox.seccomp import REFUSED_CALLS, seccomp_program

PYTHON = "import ctypes, os; libc = ctypes.CDLL(None, use_errno=True); {}"
REPORT = "print(r, 0 if r >= 0 else ctypes.get_errno(), flush=True)"

# One call each, with arguments the kernel answers at once (x86_64 numbers).
PROBES = {
    "io_uring_setup": "p = ctypes.create_string_buffer(120); r = libc.syscall(425, 1, p)",
    "io_uring_enter": "r = libc.syscall(426, -1, 0, 0, 0, 0, 0)",
    "io_uring_register": "r = libc.syscall(427, -1, 0, 0, 0)",
    "bpf": "r = libc.syscall(321, 0, 0, 0)",
    "perf_event_open": "r = libc.syscall(298, 0, 0, -1, -1, 0)",
    "userfaultfd": "r = libc.syscall(323, 1)",  # UFFD_USER_MODE_ONLY: open to anyone
    "kexec_load": "r = libc.syscall(246, 0, 0, 0, 0)",
    "kexec_file_load": "r = libc.syscall(320, -1, -1, 0, 0, 0)",
    "add_key": "r = libc.syscall(248, 0, 0, 0, 0, 0)",
    "request_key": "r = libc.syscall(249, 0, 0, 0, 0)",
    "keyctl": "r = libc.syscall(250, 0, -3, 1)",  # the session keyring's id: open to anyone
    "mount": 'r = libc.syscall(165, b"none", b"/tmp", b"tmpfs", 0, 0)',
    "umount2": 'r = libc.syscall(166, b"/tmp", 0)',
    "pivot_root": 'r = libc.syscall(155, b"/tmp", b"/tmp")',
    "open_tree": 'r = libc.syscall(428, -100, b"/", 0)',  # an O_PATH fd: open to anyone
    "move_mount": 'r = libc.syscall(429, -1, b"", -1, b"", 0)',
    "fsopen": 'r = libc.syscall(430, b"tmpfs", 0)',
    "fsconfig": "r = libc.syscall(431, -1, 0, 0, 0, 0)",
    "fsmount": "r = libc.syscall(432, -1, 0, 0)",
    "fspick": 'r = libc.syscall(433, -100, b"/", 0)',
    "mount_setattr": 'r = libc.syscall(442, -100, b"/", 0, 0, 0)',
}

# A child that sleeps; the parent tries to take hold of it with ``request``.
TAKE_HOLD = """
pid = os.fork()
if pid == 0:
    import time; time.sleep(30); os._exit(0)
r = libc.syscall(101, {request}, pid, 0, 0)
{report}
os.kill(pid, 9); os.waitpid(pid, 0)
"""
PTRACE_ATTACH, PTRACE_SEIZE = 16, 0x4206


def python(workspace: Path, code: str) -> Any:
    return sandbox_run(workspace=workspace, argv=["python", "-c", PYTHON.format(code)])


def allow_all_fd() -> int:
    """A sealed memfd holding a filter that allows every call, in place of the real one."""
    import tempfile

    import pyseccomp

    with tempfile.TemporaryFile() as fh:
        pyseccomp.SyscallFilter(pyseccomp.ALLOW).export_bpf(fh)
        fh.seek(0)
        program = fh.read()
    fd = os.memfd_create("allow-all", os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
    os.write(fd, program)
    os.lseek(fd, 0, os.SEEK_SET)
    fcntl.fcntl(fd, fcntl.F_ADD_SEALS, fcntl.F_SEAL_WRITE)
    return fd


def kernel_answer(workspace: Path, code: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """What ``code`` prints in the same sandbox with nothing filtered: the kernel's answer."""
    with monkeypatch.context() as patch:
        patch.setattr("projects.sandbox.process.seccomp_fd", allow_all_fd)
        return str(python(workspace, code).stdout)


# --- The compiled program, run as the kernel runs it -------------------------------------------

AUDIT_ARCH_X86_64 = 0xC000003E
SECCOMP_RET_ALLOW = 0x7FFF0000
SECCOMP_RET_ERRNO = 0x00050000
NUMBERS = {
    "io_uring_setup": 425, "io_uring_enter": 426, "io_uring_register": 427, "bpf": 321,
    "perf_event_open": 298, "userfaultfd": 323, "kexec_load": 246, "kexec_file_load": 320,
    "add_key": 248, "request_key": 249, "keyctl": 250, "mount": 165, "umount2": 166,
    "pivot_root": 155, "open_tree": 428, "move_mount": 429, "fsopen": 430, "fsconfig": 431,
    "fsmount": 432, "fspick": 433, "mount_setattr": 442, "clone3": 435, "getpid": 39,
}  # fmt: skip


def run_program(program: bytes, nr: int, args: tuple[int, ...] = ()) -> int:
    """The action classic BPF ``program`` returns for system call ``nr`` on x86_64.

    Reads ``struct seccomp_data`` (nr, arch, instruction pointer, six 64-bit arguments) as
    the kernel lays it out; only the instructions libseccomp emits are known.
    """
    words = list(args) + [0] * (6 - len(args))
    data = struct.pack("<iIQ6Q", nr, AUDIT_ARCH_X86_64, 0, *words)
    code = [struct.unpack("<HBBI", program[i : i + 8]) for i in range(0, len(program), 8)]
    acc, pc = 0, 0
    while True:
        op, jt, jf, k = code[pc]
        pc += 1
        if op == 0x20:  # ld [k]
            acc = struct.unpack_from("<I", data, k)[0]
        elif op == 0x54:  # and #k
            acc &= k
        elif op in (0x15, 0x25, 0x35, 0x45):  # jeq, jgt, jge, jset #k
            taken = {0x15: acc == k, 0x25: acc > k, 0x35: acc >= k, 0x45: bool(acc & k)}[op]
            pc += jt if taken else jf
        elif op == 0x05:  # ja
            pc += k
        elif op == 0x06:  # ret #k
            return k
        else:
            raise AssertionError(f"instruction {op:#x} not known to this reader")


def test_the_reader_runs_the_program_as_the_kernel_does() -> None:
    # The live answers the other tests see, read here from the program itself.
    program = seccomp_program()

    assert run_program(program, NUMBERS["getpid"]) == SECCOMP_RET_ALLOW
    assert run_program(program, NUMBERS["clone3"]) == SECCOMP_RET_ERRNO | errno.ENOSYS
    assert run_program(program, 272, (0x10000000,)) == SECCOMP_RET_ERRNO | errno.EPERM
    assert run_program(program, 272, (0x20000,)) == SECCOMP_RET_ALLOW  # unshare(CLONE_NEWNS)


def test_every_refused_call_is_probed_here() -> None:
    assert sorted(PROBES) == sorted(set(REFUSED_CALLS) - {"clone3"})


@pytest.mark.parametrize("call", sorted(PROBES))
def test_the_program_refuses_the_call_whatever_the_kernel(call: str) -> None:
    assert run_program(seccomp_program(), NUMBERS[call]) == SECCOMP_RET_ERRNO | errno.ENOSYS


# --- In a live sandbox -------------------------------------------------------------------------


@pytest.mark.parametrize("call", sorted(PROBES))
def test_the_filter_answers_enosys_where_the_kernel_answers_otherwise(
    workspace: Path, monkeypatch: pytest.MonkeyPatch, call: str
) -> None:
    code = f"{PROBES[call]}; {REPORT}"

    filtered = python(workspace, code)
    kernel = kernel_answer(workspace, code, monkeypatch)

    assert filtered.stdout == f"-1 {errno.ENOSYS}\n", filtered.stderr
    if kernel == f"-1 {errno.ENOSYS}\n":
        pytest.skip(
            f"this kernel lacks {call} (ENOSYS with or without the filter): the rule is shown "
            "by test_the_program_refuses_the_call_whatever_the_kernel"
        )
    result, code_seen = (int(part) for part in kernel.split())
    assert (result, code_seen) != (-1, errno.ENOSYS)


@pytest.mark.parametrize("request_", [PTRACE_ATTACH, PTRACE_SEIZE], ids=["attach", "seize"])
def test_taking_hold_of_a_process_with_ptrace_is_refused_where_the_kernel_allows_it(
    workspace: Path, monkeypatch: pytest.MonkeyPatch, request_: int
) -> None:
    code = TAKE_HOLD.format(request=request_, report=REPORT)

    filtered = python(workspace, code)
    kernel = kernel_answer(workspace, code, monkeypatch)

    assert filtered.stdout == f"-1 {errno.EPERM}\n", filtered.stderr
    assert kernel == "0 0\n"  # the same uid's own child: the kernel lets it be traced


def test_a_child_may_still_ask_its_parent_to_trace_it(workspace: Path) -> None:
    # A debugger's way in: the child asks (PTRACE_TRACEME), then runs a program under it.
    code = """
pid = os.fork()
if pid == 0:
    os._exit(0 if libc.syscall(101, 0, 0, 0, 0) == 0 else 1)
_, status = os.waitpid(pid, 0)
print(os.waitstatus_to_exitcode(status))
"""
    assert python(workspace, code).stdout == "0\n"


def test_a_new_user_namespace_cannot_be_made_with_unshare(workspace: Path) -> None:
    result = python(workspace, f"r = libc.unshare(0x10000000); {REPORT}")

    assert result.stdout == "-1 1\n"  # EPERM


def test_a_new_user_namespace_cannot_be_made_with_clone(workspace: Path) -> None:
    # clone(CLONE_NEWUSER | SIGCHLD) as a raw system call; a child would print nothing.
    code = f"r = libc.syscall(56, 0x10000000 | 17, 0, 0, 0, 0); r or os._exit(0); {REPORT}"

    assert python(workspace, code).stdout == "-1 1\n"


def test_clone3_answers_that_it_does_not_exist(workspace: Path) -> None:
    result = python(workspace, f"r = libc.syscall(435, 0, 0); {REPORT}")

    assert result.stdout == "-1 38\n"  # ENOSYS: the C library falls back to clone


def test_threads_and_child_processes_still_work_under_the_filter(workspace: Path) -> None:
    result = sandbox_run(
        workspace=workspace,
        argv=[
            "bash",
            "-c",
            'python -c \'import threading; t = threading.Thread(target=print, args=("thread",)); '
            "t.start(); t.join()'; (echo child) | cat",
        ],
    )

    assert result.stdout == "thread\nchild\n"
