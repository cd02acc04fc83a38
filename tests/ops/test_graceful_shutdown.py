"""The web server lets a request in flight finish when it is told to stop."""

import signal
import threading
import time
import urllib.error
import urllib.request

import pytest

from tests.net import subprocess_env, web_server


@pytest.mark.slow
@pytest.mark.django_db
def test_sigterm_lets_the_request_in_flight_finish():
    # /health waits this long for a worker ping that never comes: a slow request.
    env = subprocess_env(HEALTH_WORKER_PING_TIMEOUT="2")
    answer: dict[str, object] = {}
    with web_server(env=env) as (url, process):

        def call() -> None:
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=15) as response:
                    answer["status"] = response.status
            except urllib.error.HTTPError as exc:
                answer["status"] = exc.code
            except OSError as exc:
                answer["error"] = repr(exc)

        caller = threading.Thread(target=call)
        caller.start()
        time.sleep(0.5)
        process.send_signal(signal.SIGTERM)
        caller.join(20)
        assert process.wait(timeout=20) == 0
    assert answer.get("status") in (200, 503), answer
