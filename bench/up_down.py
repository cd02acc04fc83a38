#!/usr/bin/env python
"""`make up` from start to healthy, then one Ctrl-C to everything stopped: prints both times.

Run it from the repository root after the first install (`make up` once, or `make test`):
    .venv/bin/python bench/up_down.py
Exits non-zero when /health is not 200 within 60 s or a process outlives the Ctrl-C by 15 s.
"""

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PORT = os.environ.get("PORT", "8001")


def _health() -> dict | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{PORT}/health", timeout=5) as response:  # noqa: S310
            return json.load(response)
    except (urllib.error.URLError, OSError, ValueError):
        return None


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def main() -> int:
    started = time.monotonic()
    # A new session, like a terminal: Ctrl-C is SIGINT to the whole foreground group.
    proc = subprocess.Popen(  # noqa: S603
        ["make", "up"],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    healthy_after = None
    while time.monotonic() - started < 60:
        body = _health()
        if body and body.get("status") == "ok":
            healthy_after = time.monotonic() - started
            print(f"healthy after {healthy_after:.1f}s: {body['checks']}")
            break
        time.sleep(0.5)
    if healthy_after is None:
        print("not healthy within 60s", file=sys.stderr)
    os.killpg(proc.pid, signal.SIGINT)
    stop_started = time.monotonic()
    while time.monotonic() - stop_started < 15:
        leftovers = subprocess.run(  # noqa: S603
            ["pgrep", "-f", "config.serve|celery -A config|honcho start"],  # noqa: S607
            capture_output=True,
            text=True,
            check=False,
        ).stdout.split()
        if not leftovers and proc.poll() is not None and not _group_alive(proc.pid):
            print(f"everything stopped {time.monotonic() - stop_started:.1f}s after one Ctrl-C")
            return 0 if healthy_after is not None else 1
        time.sleep(0.2)
    print(f"processes still running 15s after Ctrl-C: {leftovers}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
