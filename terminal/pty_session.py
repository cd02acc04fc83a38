"""A shell in the sandbox on a pseudo-terminal: start, write, resize, read, close.

Plain Python, no Channels: the WebSocket consumer only translates frames to these calls.
The shell runs under ``projects.sandbox`` (its own uid, namespaces and limits) with the PTY
slave as its controlling terminal; ``close()`` kills its whole process tree.
"""

from __future__ import annotations

import codecs
import errno
import fcntl
import os
import pty
import select
import struct
import termios
import time
from pathlib import Path

from projects.sandbox import SandboxLimits, SandboxProcess, sandbox_spawn

MAX_COLS = 1000
MAX_ROWS = 1000
_READ_CHUNK = 65536


class PtySessionError(Exception):
    """The session cannot do what was asked (not started, already closed, bad size)."""


def _winsize(cols: int, rows: int) -> bytes:
    if not (1 <= cols <= MAX_COLS and 1 <= rows <= MAX_ROWS):
        raise PtySessionError(f"Terminal size must be 1..{MAX_COLS} columns, 1..{MAX_ROWS} rows.")
    return struct.pack("HHHH", rows, cols, 0, 0)


class PtySession:
    """One interactive shell in the sandbox, on a PTY whose master end this object holds.

    ``read()`` returns text decoded incrementally (a UTF-8 character split across two
    reads is never mangled), ``""`` when nothing is waiting, and ``None`` once the shell
    has gone and its output is drained.
    """

    def __init__(
        self,
        *,
        workspace: Path,
        argv: list[str],
        limits: SandboxLimits | None = None,
        env: dict[str, str] | None = None,
        cols: int = 80,
        rows: int = 24,
    ) -> None:
        self.workspace = Path(workspace)
        self.argv = list(argv)
        self.limits = limits
        self.env = {"TERM": "xterm-256color", **(env or {})}
        self.cols, self.rows = cols, rows
        self._winsize = _winsize(cols, rows)
        self._master: int | None = None
        self._process: SandboxProcess | None = None
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._eof = False

    # --- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        """Open the PTY and start the shell in the sandbox on it."""
        if self._master is not None:
            raise PtySessionError("The session has already been started.")
        master, slave = pty.openpty()
        try:
            fcntl.ioctl(slave, termios.TIOCSWINSZ, self._winsize)
            self._process = sandbox_spawn(
                workspace=self.workspace,
                argv=self.argv,
                limits=self.limits,
                env=self.env,
                stdin=slave,
                stdout=slave,
                stderr=slave,
                tty=True,
            )
        except BaseException:
            os.close(master)
            raise
        finally:
            os.close(slave)
        os.set_blocking(master, False)
        self._master = master

    @property
    def fd(self) -> int:
        """The PTY master's file descriptor (for an event loop's ``add_reader``)."""
        if self._master is None:
            raise PtySessionError("The session is not running.")
        return self._master

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    @property
    def uid(self) -> int | None:
        """The sandbox uid the shell runs as (``None`` in unsafe-local mode)."""
        return self._process.uid if self._process else None

    @property
    def mode(self) -> str | None:
        return self._process.mode if self._process else None

    def over_memory(self, limit_mb: int) -> bool:
        """True when the shell and what it started hold more than ``limit_mb`` resident."""
        return self._process is not None and self._process.over_memory(limit_mb)

    def exit_code(self) -> int | None:
        """The shell's exit code, or ``None`` while it runs."""
        if self._process is None:
            return None
        return self._process.popen.poll()

    def wait(self, timeout: float | None = None) -> int | None:
        """Wait for the shell to end; its exit code, or ``None`` if it still runs."""
        if self._process is None:
            return None
        deadline = None if timeout is None else time.monotonic() + timeout
        while self._process.popen.poll() is None:
            if deadline is not None and time.monotonic() >= deadline:
                return None
            time.sleep(0.02)
        return self._process.popen.returncode

    def close(self) -> int | None:
        """Kill the shell and everything it started, release the PTY; the exit code."""
        code: int | None = None
        if self._process is not None:
            try:
                self._process.close()
                code = self._process.popen.returncode
            finally:
                self._process = None
        if self._master is not None:
            os.close(self._master)
            self._master = None
        self._eof = True
        return code

    def __enter__(self) -> PtySession:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- I/O -----------------------------------------------------------------------------

    def write(self, data: str | bytes, timeout: float = 5.0) -> None:
        """Send keystrokes to the shell (waits while the PTY's input buffer is full)."""
        payload = data.encode("utf-8") if isinstance(data, str) else bytes(data)
        deadline = time.monotonic() + timeout
        view = memoryview(payload)
        while view:
            try:
                written = os.write(self.fd, view)
                view = view[written:]
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise PtySessionError("The terminal is not reading its input.") from None
                select.select([], [self.fd], [], 0.05)

    def resize(self, cols: int, rows: int) -> None:
        """Set the window size (TIOCSWINSZ); the shell gets SIGWINCH from the kernel."""
        fcntl.ioctl(self.fd, termios.TIOCSWINSZ, _winsize(int(cols), int(rows)))
        self.cols, self.rows = int(cols), int(rows)

    def read_bytes(self, limit: int = _READ_CHUNK) -> bytes | None:
        """Raw output waiting now (``b""`` if none), ``None`` at end of output."""
        if self._eof or self._master is None:
            return None
        try:
            data = os.read(self._master, max(1, min(limit, _READ_CHUNK)))
        except BlockingIOError:
            return b""
        except OSError as exc:
            # Linux answers EIO on the master once every slave end is closed.
            if exc.errno != errno.EIO:
                raise
            data = b""
        if not data:
            self._eof = True
            return None
        return data

    def read(self, limit: int = _READ_CHUNK) -> str | None:
        """Output waiting now as text (``""`` if none), ``None`` at end of output."""
        data = self.read_bytes(limit)
        if data is None:
            tail = self._decoder.decode(b"", final=True)
            return tail or None
        return self._decoder.decode(data)

    def read_until(self, needle: str, timeout: float = 10.0) -> str:
        """Read until ``needle`` appears in the output (or the time is up); all read text."""
        deadline = time.monotonic() + timeout
        text = ""
        while needle not in text and time.monotonic() < deadline:
            select.select([self.fd], [], [], 0.1)
            chunk = self.read()
            if chunk is None:
                break
            text += chunk
        return text
