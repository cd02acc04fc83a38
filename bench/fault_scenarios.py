"""The six faults of `make faults` (see ``bench.faults``), each a method of ``Suite``.

A fault starts runs of its own through the API, waits for a seeded moment of a step, does
its harm to the stack (``bench.stack``) or to the suite's private Redis, and waits for the
runs to finish; ``bench.faults`` reads what followed from the runs' rows.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.stack import Api, Stack, free_port, wait_listening

SEED = int(os.environ.get("BENCH_SEED", "14"))
LATENCY_MS = int(os.environ.get("BENCH_FAULTS_LATENCY_MS", "500"))
KILLS = int(os.environ.get("BENCH_FAULTS_KILLS", "10"))
TIMEOUT = float(os.environ.get("BENCH_FAULTS_TIMEOUT", "240"))
DRIVER = "aiflow-faults-driver"  # the driver's own PostgreSQL connections are spared


# --- a private Redis ---------------------------------------------------------------------------


class PrivateRedis:
    """A ``redis-server`` of this suite on a free port, with its append-only file."""

    def __init__(self, directory: Path):
        self.directory = directory
        self.port = free_port()
        self.process: subprocess.Popen | None = None
        shutil.rmtree(directory, ignore_errors=True)
        directory.mkdir(parents=True)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed (apt-get install redis-server)")
        self.process = subprocess.Popen(
            [
                binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--dir",
                str(self.directory),
                "--appendonly",
                "yes",
                "--appendfsync",
                "everysec",
                "--save",
                "",
                "--daemonize",
                "no",
            ],  # fmt: skip
            stdout=(self.directory / "redis.log").open("ab"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        wait_listening(self.port, self.process)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()  # redis-server flushes its append-only file and exits
            self.process.wait(timeout=30)
        self.process = None

    def restart(self) -> None:
        self.stop()
        self.start()


# --- a fault's runs, and waiting on them -----------------------------------------------------


@dataclass
class Outcome:
    """One fault's runs and what followed."""

    fault: str
    runs: list[int] = field(default_factory=list)
    fault_times: dict[int, float] = field(default_factory=dict)
    note: str = ""
    extra: dict[str, Any] = field(default_factory=dict)
    # Processes that exited by themselves meanwhile (the supervisor started them again).
    crashes: list[tuple[str, float, int]] = field(default_factory=list)


def wait_for(condition: Callable[[], Any], *, timeout: float, poll: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(poll)
    raise TimeoutError(f"not reached within {timeout}s")


def running_step(run_id: int, role: str) -> Any:
    from pipeline.models import Step

    return (
        Step.objects.filter(run_id=run_id, role=role, status=Step.Status.RUNNING)
        .values_list("key", flat=True)
        .first()
    )


def wait_finished(run_ids: list[int], timeout: float) -> None:
    from pipeline.models import Run

    with suppress(TimeoutError):
        wait_for(
            lambda: (
                not Run.objects.filter(id__in=run_ids).exclude(status__in=Run.FINISHED).exists()
            ),
            timeout=timeout,
            poll=0.2,
        )


# --- the suite ---------------------------------------------------------------------------------


@dataclass
class Suite:
    stack: Stack
    redis: PrivateRedis
    api: Api
    project_id: int
    rng: random.Random
    outcomes: list[Outcome] = field(default_factory=list)

    def start_run(self, label: str) -> int:
        return self.api.generate(self.project_id, f"A {label} tracker, run {time.time_ns()}")

    def restart_workers(self, **env: str) -> None:
        for role in ("worker_llm", "worker_sandbox"):
            self.stack.stop(role)
        for role in ("worker_llm", "worker_sandbox"):
            self.stack.start(role, **env)
        self.stack.wait_workers(["worker_llm", "worker_sandbox"])

    def at_random_moment_of(self, run_id: int, role: str) -> str:
        """Wait until a ``role`` step of the run is running, then a seeded moment more."""
        key = wait_for(lambda: running_step(run_id, role), timeout=TIMEOUT)
        time.sleep(self.rng.uniform(0.05, 0.9) * LATENCY_MS / 1000)
        return str(key)

    def start_at_coder_moment(self, outcome: Outcome, label: str) -> int:
        """Start one of ``outcome``'s runs; return at a seeded moment of a coder step, noted as
        the fault's time."""
        run_id = self.start_run(label)
        outcome.runs.append(run_id)
        self.at_random_moment_of(run_id, "coder")
        outcome.fault_times[run_id] = time.time()
        return run_id

    def web_requests_failing(self, attempts: int = 20) -> int:
        """How many GET /projects answer 5xx before one succeeds (a user's first requests)."""
        for failed in range(attempts):
            if self.api.http.get("/projects").status_code < 500:
                return failed
            time.sleep(0.1)
        return attempts

    def note_web_recovery(self, outcome: Outcome, note: str) -> None:
        """Set ``note``, and how many API requests failed after the fault, on ``outcome``."""
        failed_requests = self.web_requests_failing()
        outcome.extra["web_requests_failed"] = failed_requests
        outcome.note = note + (
            f"; then {failed_requests} API request(s) answered 5xx before one succeeded"
            if failed_requests
            else ""
        )

    # 1
    def sigkill_llm(self) -> Outcome:
        outcome = Outcome(f"SIGKILL llm worker during coding (x{KILLS})")
        for _ in range(KILLS):
            run_id = self.start_at_coder_moment(outcome, "habit")
            self.stack.kill("worker_llm", signal.SIGKILL)
            self.stack.start("worker_llm")
            wait_finished([run_id], TIMEOUT)
        return outcome

    # 2
    def sigkill_sandbox(self) -> Outcome:
        outcome = Outcome("SIGKILL sandbox worker during a test")
        self.restart_workers(SANDBOX_TESTS_ENABLED="true")
        try:
            run_id = self.start_run("reading list")
            outcome.runs.append(run_id)
            key = wait_for(lambda: running_step(run_id, "tester"), timeout=TIMEOUT)
            time.sleep(self.rng.uniform(0.3, 1.5))  # inside the checks (they take seconds)
            outcome.note = f"killed during {key}"
            outcome.fault_times[run_id] = time.time()
            self.stack.kill("worker_sandbox", signal.SIGKILL)
            self.stack.start("worker_sandbox")
            wait_finished([run_id], TIMEOUT)
        finally:
            self.stack.env_extra["SANDBOX_TESTS_ENABLED"] = "false"
            self.restart_workers()
        return outcome

    # 3
    def sigterm_llm(self) -> Outcome:
        outcome = Outcome("SIGTERM llm worker during coding")
        run_id = self.start_at_coder_moment(outcome, "budget")
        self.stack.stop("worker_llm", sig=signal.SIGTERM, timeout=120)
        outcome.extra["drained_s"] = time.time() - outcome.fault_times[run_id]
        self.stack.start("worker_llm")
        wait_finished([run_id], TIMEOUT)
        outcome.note = f"the worker drained in {outcome.extra['drained_s']:.1f} s"
        return outcome

    # 4
    def redis_restart(self) -> Outcome:
        outcome = Outcome("Redis restarted mid-run")
        run_id = self.start_at_coder_moment(outcome, "plant watering")
        self.redis.restart()
        outcome.extra["down_s"] = time.time() - outcome.fault_times[run_id]
        wait_finished([run_id], TIMEOUT)
        self.note_web_recovery(
            outcome, f"Redis down {outcome.extra['down_s']:.1f} s (append-only file kept)"
        )
        return outcome

    # 5
    def pg_terminate(self) -> Outcome:
        import psycopg

        outcome = Outcome("PostgreSQL connections killed mid-run")
        run_id = self.start_at_coder_moment(outcome, "mileage")
        with psycopg.connect(
            self.stack.database_url.rsplit("/", 1)[0] + "/postgres", autocommit=True
        ) as conn:
            killed = conn.execute(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE datname = %s AND pid <> pg_backend_pid() AND application_name <> %s",
                (self.stack.db_name, DRIVER),
            ).fetchone()
        outcome.extra["terminated"] = killed[0] if killed else 0
        wait_finished([run_id], TIMEOUT)
        self.note_web_recovery(outcome, f"{outcome.extra['terminated']} backends terminated")
        return outcome

    # 6
    def provider_hang(self) -> Outcome:
        from tests.providers.stubs import Reply, StubServer

        outcome = Outcome("provider hangs past its timeout")
        release = threading.Event()
        hang_seconds = 30.0

        def hang(_: Any) -> Reply:
            release.wait(hang_seconds)
            return Reply(status=503, body={"error": {"message": "stub gave up"}})

        stub = StubServer(default=hang)
        # The platform gives up on a hanging request; the late answer then meets a closed socket.
        stub.httpd.handle_error = lambda request, client_address: None  # type: ignore[method-assign]
        timeout = "2"
        try:
            self.restart_workers(
                LLM_EXTRA_PROVIDERS=json.dumps(
                    {
                        "hanging": {
                            "kind": "openai",
                            "base_url": f"{stub.url}/v1",
                            "api_key": "stub",
                            "default_model": "stub-model",
                        }
                    }
                ),
                LLM_CHAIN_DEFAULT="hanging:stub-model,offline:offline",
                # A model without a price is never called: price it, so the request is sent.
                LLM_PRICES=json.dumps({"hanging:stub-model": [1, 1]}),
                LLM_TIMEOUT_SECONDS=timeout,
            )
            run_id = self.start_run("hanging provider")
            outcome.runs.append(run_id)
            outcome.fault_times[run_id] = time.time()
            wait_finished([run_id], TIMEOUT)
        finally:
            release.set()
            stub.close()
            for name in (
                "LLM_EXTRA_PROVIDERS",
                "LLM_CHAIN_DEFAULT",
                "LLM_PRICES",
                "LLM_TIMEOUT_SECONDS",
            ):
                self.stack.env_extra.pop(name, None)
            self.restart_workers()
        from pipeline.models import Event

        failovers = Event.objects.filter(run_id__in=outcome.runs, type="provider.failover").count()
        outcome.extra.update({"stub_requests": len(stub.requests), "failovers": failovers})
        outcome.note = (
            f"timeout {timeout} s; {len(stub.requests)} requests hung, "
            f"{failovers} failover event(s) to the offline model"
        )
        if not stub.requests:
            outcome.note += " (the hanging provider was never called: this row shows nothing)"
        return outcome

    # 7
    def sigkill_after_store(self) -> Outcome:
        """The llm worker SIGKILLed right after a step's store and before its task sent what
        follows (a fault point holds it there): no step runs and nothing is queued."""
        from pipeline.faults import fault_held, fault_script_set

        outcome = Outcome("SIGKILL llm worker between a step's store and its send")
        self.restart_workers(PIPELINE_FAULT_POINTS="true")
        try:
            fault_script_set([{"point": "answer_stored", "seconds": 600}])
            run_id = self.start_run("sleep log")
            outcome.runs.append(run_id)
            held = wait_for(fault_held, timeout=TIMEOUT)
            outcome.fault_times[run_id] = time.time()
            self.stack.kill("worker_llm", signal.SIGKILL)
            self.stack.start("worker_llm")
            wait_finished([run_id], TIMEOUT)
            outcome.note = f"killed after {held[0]['step']} was stored"
        finally:
            fault_script_set([])
            self.stack.env_extra.pop("PIPELINE_FAULT_POINTS", None)
            self.restart_workers()
        return outcome
