"""A small process supervisor: several copies of one process, forked once the parent has
loaded what they share, restarted when one dies.

The web tier (``config.serve``) and the llm worker (``config.llm_worker``) each run one
process per CPU by default, because a Python process runs its Python code on one core at a
time. The supervisor loads the application first (``preload``), freezes it
(``common.memory``) and then forks its children: each starts with the application already
in memory, in pages it shares with the supervisor and its siblings copy-on-write, instead
of importing a copy of its own (the frozen objects are never walked by the collector, so
the pages that hold them stay shared). It restarts a child that dies (a child that dies
more than ``MAX_RESTARTS`` times within ``RESTART_WINDOW`` seconds ends the supervisor with
status 1), and on SIGTERM or SIGINT passes SIGTERM on and waits for every one of them.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from typing import Any

# A process that dies this many times within RESTART_WINDOW seconds is not started again.
MAX_RESTARTS, RESTART_WINDOW = 5, 60.0


def die_with_parent() -> None:
    """Get SIGTERM should the supervisor die without a word (SIGKILL)."""
    with contextlib.suppress(OSError, AttributeError):  # not Linux: no such guard
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def before_fork() -> None:
    """Close what a child must not share with its parent: database connections and pools
    (a socket two processes write to mixes their statements; a pool's threads are not
    copied by ``fork``). Redis clients reconnect by themselves in a child."""
    if "django.db" not in sys.modules:
        return
    from django.db import connections

    for connection in connections.all(initialized_only=True):
        connection.close()
        close_pool = getattr(connection, "close_pool", None)
        if close_pool is not None:
            close_pool()


class Child:
    """A forked child, with the part of ``subprocess.Popen``'s interface the supervisor uses."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.returncode: int | None = None

    def poll(self) -> int | None:
        if self.returncode is None:
            try:
                pid, status = os.waitpid(self.pid, os.WNOHANG)
            except ChildProcessError:  # reaped elsewhere: it is gone, with no status
                self.returncode = 1
                return self.returncode
            if pid:
                self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.poll() is None:
            if deadline is not None and time.monotonic() >= deadline:
                raise subprocess.TimeoutExpired(f"pid {self.pid}", timeout or 0)
            time.sleep(0.05)
        return self.returncode  # type: ignore[return-value]

    def send_signal(self, sig: int) -> None:
        if self.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, sig)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)


class Supervisor:
    """Runs ``target(slot)`` in a forked child for every slot in ``range(count)``.

    ``target`` returns the child's exit status (or raises ``SystemExit``); it never returns
    into the supervisor's code. ``own_session``: each child gets a session of its own, so
    that only the supervisor signals it (a terminal's Ctrl-C reaches the supervisor, which
    passes SIGTERM on); otherwise the children stay in the supervisor's process group, and a
    signal sent to that group (a process manager's SIGKILL) reaches every one of them at
    once. ``grace``: seconds to wait for the children once told to stop before SIGKILL
    (None: as long as they take).
    """

    def __init__(
        self,
        count: int,
        target: Callable[[int], int | None],
        *,
        own_session: bool = False,
        grace: float | None = None,
    ) -> None:
        self.count, self.target = count, target
        self.own_session, self.grace = own_session, grace
        self.children: dict[int, Child] = {}
        self.stopping = False
        self.deaths: list[float] = []

    def _start(self, slot: int) -> None:
        before_fork()
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            self._child(slot)  # never returns
        self.children[slot] = Child(pid)

    def _child(self, slot: int) -> None:
        code = 1
        try:
            # A fresh process's signal dispositions, not the supervisor's handlers; and no
            # siblings to signal.
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            signal.signal(signal.SIGINT, signal.default_int_handler)
            self.children = {}
            if self.own_session:
                os.setsid()
            die_with_parent()
            result = self.target(slot)
            code = 0 if result is None else int(result)
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        except BaseException:
            traceback.print_exc()
        finally:
            with contextlib.suppress(Exception):
                sys.stdout.flush()
                sys.stderr.flush()
            os._exit(code)

    def _stop(self, *_: Any) -> None:
        self.stopping = True
        for child in self.children.values():
            child.send_signal(signal.SIGTERM)

    def _wait(self, child: Child, deadline: float | None) -> int:
        if deadline is None:
            return child.wait()
        try:
            return child.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            child.kill()
            return child.wait()

    def run(self) -> int:
        signal.signal(signal.SIGTERM, self._stop)
        signal.signal(signal.SIGINT, self._stop)
        for slot in range(self.count):
            self._start(slot)
        while not self.stopping:
            for slot, child in list(self.children.items()):
                if child.poll() is None or self.stopping:
                    continue
                now = time.monotonic()
                self.deaths = [t for t in self.deaths if now - t < RESTART_WINDOW] + [now]
                print(
                    f"process {child.pid} exited with {child.returncode}",
                    file=sys.stderr,
                    flush=True,
                )
                if len(self.deaths) > MAX_RESTARTS:
                    self._stop()
                    break
                self._start(slot)
            time.sleep(0.2)
        deadline = None if self.grace is None else time.monotonic() + self.grace
        codes = [self._wait(child, deadline) for child in self.children.values()]
        crashed = len(self.deaths) > MAX_RESTARTS
        # A child told to stop before it could catch SIGTERM (still starting) died of it: a stop.
        return 1 if crashed or any(code not in (0, -signal.SIGTERM) for code in codes) else 0
