"""A small process supervisor: several copies of one process, restarted when one dies.

The web tier (``config.serve``) and the llm worker (``config.llm_worker``) each run one
process per CPU by default, because a Python process runs its Python code on one core at a
time. This supervisor starts them, restarts one that dies (a process that dies more than
``MAX_RESTARTS`` times within ``RESTART_WINDOW`` seconds ends the supervisor with status 1),
and on SIGTERM or SIGINT passes SIGTERM on and waits for every one of them to finish.
"""

from __future__ import annotations

import contextlib
import ctypes
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

# A process that dies this many times within RESTART_WINDOW seconds is not started again.
MAX_RESTARTS, RESTART_WINDOW = 5, 60.0


def die_with_parent() -> None:
    """Get SIGTERM should the supervisor die without a word (SIGKILL)."""
    with contextlib.suppress(OSError, AttributeError):  # not Linux: no such guard
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class Supervisor:
    """Runs ``command(slot)`` for every slot in ``range(count)``.

    ``own_session``: each child gets a session of its own, so that only the supervisor
    signals it (a terminal's Ctrl-C reaches the supervisor, which passes SIGTERM on);
    otherwise the children stay in the supervisor's process group, and a signal sent to
    that group (a process manager's SIGKILL) reaches every one of them at once.
    ``grace``: seconds to wait for the children once told to stop before SIGKILL (None:
    as long as they take).
    """

    def __init__(
        self,
        count: int,
        command: Callable[[int], list[str]],
        *,
        own_session: bool = False,
        grace: float | None = None,
    ) -> None:
        self.count, self.command = count, command
        self.own_session, self.grace = own_session, grace
        self.children: dict[int, subprocess.Popen] = {}
        self.stopping = False
        self.deaths: list[float] = []

    def _start(self, slot: int) -> None:
        self.children[slot] = subprocess.Popen(  # noqa: S603 - our own commands
            self.command(slot),
            start_new_session=self.own_session,
            preexec_fn=die_with_parent,  # noqa: PLW1509 - one thread here; no lock to inherit
        )

    def _stop(self, *_: Any) -> None:
        self.stopping = True
        for child in self.children.values():
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)

    def _wait(self, child: subprocess.Popen, deadline: float | None) -> int:
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
