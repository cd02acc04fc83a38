"""Told to stop (SIGTERM), the web server and the workers finish what they started.

The web server stops listening at once (a new connection is refused) and lets the request
in flight finish with its whole answer; a worker finishes the step it is running, takes
no other, and exits 0; another worker then finishes the run without repeating the step.
"""

import json
import signal
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from tests.net import subprocess_env, web_server, worker_process


class SilentServer:
    """A TCP port that accepts connections and never answers: a hung dependency."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.connected = threading.Event()
        self.held: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.held.append(conn)
            self.connected.set()

    def close(self) -> None:
        self.sock.close()
        for conn in self.held:
            conn.close()


@pytest.fixture
def hung_database() -> Iterator[SilentServer]:
    server = SilentServer()
    yield server
    server.close()


def _refused(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    except ConnectionRefusedError:
        return True
    return False


@pytest.mark.slow
@pytest.mark.django_db
@pytest.mark.parametrize("processes", ["1", "2"])
def test_sigterm_refuses_new_connections_and_lets_the_request_in_flight_finish(
    hung_database, processes
):
    # A fresh process's first /health waits for its checks; the database check hangs until
    # its timeout: a request that is in flight for a while, with a known answer.
    env = subprocess_env(
        DATABASE_URL=f"postgres://aiflow@127.0.0.1:{hung_database.port}/aiflow",
        DB_POOL_TIMEOUT="30",
        HEALTH_CHECK_TIMEOUT_SECONDS="8",
        WEB_DRAIN_SECONDS="30",
        WEB_PROCESSES=processes,
    )
    answer: dict[str, Any] = {}
    with web_server(env=env) as (url, process):
        port = int(url.rsplit(":", 1)[1])

        def call() -> None:
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=60) as response:
                    answer["status"], answer["body"] = response.status, response.read()
            except urllib.error.HTTPError as exc:
                answer["status"], answer["body"] = exc.code, exc.read()
            except OSError as exc:
                answer["error"] = repr(exc)

        caller = threading.Thread(target=call)
        caller.start()
        assert hung_database.connected.wait(60), "the request never reached the database"
        process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 20
        while not _refused(port) and time.monotonic() < deadline:
            time.sleep(0.05)
        refused_while_in_flight = _refused(port) and caller.is_alive()
        caller.join(60)
        assert process.wait(timeout=60) == 0

    assert refused_while_in_flight
    assert answer.get("status") == 503, answer
    body = json.loads(answer["body"])
    assert body["failing"] == ["database", "workers"]
    assert body["checks"]["database"] == "error: timed out"


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_worker_told_to_stop_mid_step_finishes_the_step_and_exits_0(project, tmp_path):
    from pipeline.models import Run, Step
    from pipeline.services import run_start
    from tests.pipeline.conftest import wait_for_run, wait_until

    slow = subprocess_env(OFFLINE_LATENCY_MS="4000", SANDBOX_TESTS_ENABLED="false")
    with worker_process(name="stopping", env=slow, log=tmp_path / "stopping.log") as worker:
        run = run_start(project=project, user=project.owner, prompt="A CLI timer")
        step = wait_until(
            lambda: Step.objects.filter(run=run, status=Step.Status.RUNNING).first(), timeout=120
        )
        worker.send_signal(signal.SIGTERM)
        stopped_at = time.time()
        assert worker.wait(timeout=120) == 0

    step.refresh_from_db()
    assert (step.status, step.llm_calls) == (Step.Status.SUCCEEDED, 1)
    assert step.finished_at.timestamp() > stopped_at
    # The stopping worker took nothing new: every other step started after it left.
    assert not Step.objects.filter(run=run).exclude(id=step.id).exists()
    finished_at = step.finished_at

    fast = subprocess_env(SANDBOX_TESTS_ENABLED="false", HEALTH_HEARTBEAT_SECONDS="0.5")
    with worker_process(name="next", env=fast, log=tmp_path / "next.log"):
        run = wait_for_run(run.id, timeout=240)

    assert run.status == Run.Status.COMPLETED
    assert not Step.objects.filter(run=run, llm_calls__gt=1).exists()
    step.refresh_from_db()
    assert (step.llm_calls, step.finished_at) == (1, finished_at)  # not run again
