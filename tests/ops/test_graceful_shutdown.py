"""The web server lets a request in flight finish when it is told to stop."""

import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.net import free_port, wait_listening

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_sigterm_lets_the_request_in_flight_finish():
    port = free_port()
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings.test",
        # /health waits this long for a worker ping that never comes: a slow request.
        "HEALTH_WORKER_PING_TIMEOUT": "2",
    }
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "config.serve",
            "-b",
            "127.0.0.1",
            "-p",
            str(port),
            "config.asgi:application",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        wait_listening(port, proc)
        answer: dict[str, object] = {}

        def call() -> None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=15) as r:
                    answer["status"] = r.status
            except urllib.error.HTTPError as exc:
                answer["status"] = exc.code
            except OSError as exc:
                answer["error"] = repr(exc)

        caller = threading.Thread(target=call)
        caller.start()
        time.sleep(0.5)
        proc.send_signal(signal.SIGTERM)
        caller.join(20)
        assert proc.wait(timeout=20) == 0
    finally:
        proc.kill()
    assert answer.get("status") in (200, 503), answer
