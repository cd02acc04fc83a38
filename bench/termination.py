"""How a benchmark process ends when it is told to stop."""

from __future__ import annotations

import signal


def stop_on_termination() -> None:
    """Let SIGTERM and SIGHUP end this process the way Ctrl-C does, through its ``finally``
    blocks, so the stack it started is stopped. By default either signal ends it at once
    (``timeout``, a closed terminal), and the stack's workers live on and take the next
    sitting's tasks from the same queues. Call it from the main thread."""

    def _exit(signum: int, _frame: object) -> None:
        raise SystemExit(128 + signum)

    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _exit)
