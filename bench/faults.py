#!/usr/bin/env python
"""`make faults`: the fault table. Real processes are killed; the runs' rows say what followed.

The stack (``bench.stack``: daphne web, the llm and sandbox workers, beat) runs on a
database of its own (``aiflow_bench_faults``) and on a private ``redis-server`` this script
starts on a free port (append-only file on, as a broker that must not lose messages would
run), so that restarting Redis touches nothing else on the machine. The offline model
answers at ``BENCH_FAULTS_LATENCY_MS`` per call. Every run is started through the API.

Faults, each on runs of its own, at seeded moments (``bench.fault_scenarios``):

1. SIGKILL of the llm worker during coding, ``BENCH_FAULTS_KILLS`` (10) times: a coder step
   is running, a random moment later the worker's whole process group is killed, and it is
   started again at once (what a process supervisor does);
2. SIGKILL of the sandbox worker while a tester runs the checks (the sandbox on);
3. SIGTERM of the llm worker during coding (a deploy): it drains, then starts again;
4. a Redis restart mid-run (SIGTERM to the private redis-server, then start it again);
5. PostgreSQL connections killed mid-run (``pg_terminate_backend`` of every backend of the
   faults database except this script's own);
6. a provider that hangs past its timeout: a local stub vendor server (OpenAI wire
   protocol) that never answers in time, first in the chain, the offline model second.
7. SIGKILL of the llm worker right after a step's store and before its task sent what
   follows (held there by a fault point, ``pipeline.faults``): no step runs, nothing is
   queued, and only the worker's lapsed liveness key tells (``pipeline.services.liveness``).

For each: runs completed or failed (with the reason), time to recover (fault -> run
completed), duplicated steps (a step key completed twice) or artifacts (a path stored twice),
and paid calls repeated (the offline model's answered calls per step key beyond one, set
against the steps' ``llm_calls``). Finally every run of the suite must have finished: a run
still active after ``BENCH_FAULTS_TIMEOUT`` seconds is lost.

Figures, not assertions: exits 0 whatever the table says, non-zero only when the stack
could not be run. The platform's detection settings (PIPELINE_HEARTBEAT_SECONDS,
PIPELINE_STALE_SECONDS, PIPELINE_REAPER_SECONDS) are its own defaults unless set in the
environment; the table's title shows the values in force.
"""

from __future__ import annotations

import os
import random
import socket
import sys
import time
import traceback
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[0] = str(ROOT)  # not bench/: its modules must not shadow the standard library

from bench import report  # noqa: E402
from bench.fault_scenarios import (  # noqa: E402
    DRIVER,
    LATENCY_MS,
    SEED,
    TIMEOUT,
    Outcome,
    PrivateRedis,
    Suite,
    wait_finished,
)
from bench.report import fmt  # noqa: E402
from bench.stack import VAR, Api, Stack, django_setup  # noqa: E402
from bench.termination import stop_on_termination  # noqa: E402

ONLY = {int(v) for v in os.environ.get("BENCH_ONLY", "1,2,3,4,5,6,7").split(",") if v.strip()}
OUTPUT = Path(os.environ.get("BENCH_OUTPUT", ROOT / "bench" / "results" / "faults.json"))
FINISHED = ("completed", "failed", "cancelled")


# --- what happened to a run ------------------------------------------------------------------


@dataclass
class FaultRow:
    """One line of the fault table."""

    number: str
    fault: str
    runs: str = ""
    recover: str = ""
    duplicates: str = ""
    repeated_paid_calls: str = ""
    note: str = ""


COLUMNS = {
    "number": "#",
    "fault": "fault",
    "runs": "runs",
    "recover": "time to recover (fault -> completed)",
    "duplicates": "duplicated steps / artifacts",
    "repeated_paid_calls": "paid calls repeated",
    "note": "note",
}


def inspect(run_id: int) -> dict[str, Any]:
    """A run's status and its duplicates, read from its rows and the offline model's counts."""
    from pipeline.models import Event, Run, Step
    from projects.models import Artifact
    from providers.offline.answers import calls_for

    run = Run.objects.get(id=run_id)
    completed = Counter(
        e.payload.get("key") for e in Event.objects.filter(run_id=run_id, type="step.completed")
    )
    started = Counter(
        e.payload.get("key") for e in Event.objects.filter(run_id=run_id, type="step.started")
    )
    paths = Counter(Artifact.objects.filter(run_id=run_id).values_list("path", flat=True))
    written = Counter(
        e.payload.get("path") for e in Event.objects.filter(run_id=run_id, type="file.written")
    )
    billed = dict(Step.objects.filter(run_id=run_id).values_list("key", "llm_calls"))
    answered = calls_for(run_id)
    return {
        "id": run_id,
        "status": run.status,
        "reason": run.error_code,
        "error": run.error[:300],
        "finished_at": run.finished_at.timestamp() if run.finished_at else None,
        "resume_count": run.resume_count,
        "steps": len(billed),
        "duplicated_steps": sum(n - 1 for n in completed.values() if n > 1),
        "restarted_steps": sorted(k for k, n in started.items() if n > 1),
        "duplicated_artifacts": sum(n - 1 for n in paths.values() if n > 1)
        + sum(n - 1 for n in written.values() if n > 1),
        "answered_calls": sum(answered.values()),
        "billed_calls": sum(billed.values()),
        "repeated_paid_calls": sum(n - 1 for n in answered.values() if n > 1),
        "answered_not_billed": sum(max(0, n - billed.get(k, 0)) for k, n in answered.items()),
    }


def _row(number: int, outcome: Outcome, runs: list[dict[str, Any]]) -> FaultRow:
    completed = [r for r in runs if r["status"] == "completed"]
    failed = Counter(f"{r['status']}: {r['reason'] or '-'}" for r in runs if r not in completed)
    recover = [
        r["finished_at"] - outcome.fault_times[r["id"]]
        for r in completed
        if r["finished_at"] is not None and r["id"] in outcome.fault_times
    ]
    recovered = (
        f"p50 {fmt(sorted(recover)[len(recover) // 2])} s, max {fmt(max(recover))} s"
        if len(recover) > 1
        else (f"{fmt(recover[0])} s" if recover else "-")
    )
    dup_steps = sum(r["duplicated_steps"] for r in runs)
    dup_artifacts = sum(r["duplicated_artifacts"] for r in runs)
    repeated = sum(r["repeated_paid_calls"] for r in runs)
    unbilled = sum(r["answered_not_billed"] for r in runs)
    restarted = sum(len(r["restarted_steps"]) for r in runs)
    note = outcome.note
    for error in sorted({r["error"][:90] for r in runs if r not in completed and r["error"]}):
        note += ("; " if note else "") + f"error: {error}"
    if restarted:
        note += ("; " if note else "") + f"{restarted} interrupted step(s) ran again"
    if unbilled:
        note += ("; " if note else "") + f"{unbilled} answered call(s) not on any step's bill"
    for role, _, status in outcome.crashes:
        note += ("; " if note else "") + f"{role} exited by itself ({status}), restarted"
    return FaultRow(
        str(number),
        outcome.fault,
        runs=f"{len(completed)}/{len(runs)} completed" + (f"; {dict(failed)}" if failed else ""),
        recover=recovered,
        duplicates=f"{dup_steps} / {dup_artifacts}",
        repeated_paid_calls=str(repeated),
        note=note,
    )


@contextmanager
def _suite() -> Iterator[Suite]:
    redis = PrivateRedis(VAR / "faults" / "redis")
    redis.start()
    stack = Stack(
        name="faults",
        db_name=os.environ.get("BENCH_FAULTS_DB", "aiflow_bench_faults"),
        redis_url=redis.url,
        env_extra={"OFFLINE_LATENCY_MS": str(LATENCY_MS), "SANDBOX_TESTS_ENABLED": "false"},
    )
    stack.env_extra["DJANGO_CSRF_TRUSTED_ORIGINS"] = stack.base_url
    try:
        stack.prepare_database()
        django_setup(stack, application_name=DRIVER)
        stack.start_all()
        stack.supervise()
        api = Api(stack)
        yield Suite(
            stack=stack,
            redis=redis,
            api=api,
            project_id=api.project("faults"),
            rng=random.Random(SEED),
        )
    finally:
        stack.close()
        redis.stop()


def main() -> int:
    started, speed = time.monotonic(), report.reference_loop_us()
    print(
        f"faults: offline model {LATENCY_MS} ms per call, seed {SEED}, logs in var/bench/faults/",
        flush=True,
    )
    rows: list[FaultRow] = []
    details: dict[str, Any] = {}
    with _suite() as suite:
        from django.conf import settings

        detection = (
            f"heartbeat {settings.PIPELINE_HEARTBEAT_SECONDS:g} s, stale after "
            f"{settings.PIPELINE_STALE_SECONDS:g} s, reaper every "
            f"{settings.PIPELINE_REAPER_SECONDS:g} s"
        )
        print(f"faults: {detection}; host {socket.gethostname()}", flush=True)
        scenarios: list[tuple[int, Callable[[], Outcome]]] = [
            (1, suite.sigkill_llm),
            (2, suite.sigkill_sandbox),
            (3, suite.sigterm_llm),
            (4, suite.redis_restart),
            (5, suite.pg_terminate),
            (6, suite.provider_hang),
            (7, suite.sigkill_after_store),
        ]
        done: list[tuple[int, Outcome]] = []
        for number, scenario in scenarios:
            if number not in ONLY:
                continue
            print(f"faults: {number}. {scenario.__name__} ...", flush=True)
            t0 = time.monotonic()
            crashed_before = len(suite.stack.crashes)
            try:
                outcome = scenario()
                outcome.crashes = suite.stack.crashes[crashed_before:]
                done.append((number, outcome))
            except Exception as exc:
                traceback.print_exc()
                rows.append(
                    FaultRow(
                        str(number), scenario.__name__, runs=f"error: {type(exc).__name__}: {exc}"
                    )
                )
            print(f"faults: {number}. done in {time.monotonic() - t0:.0f} s", flush=True)
        every = [run_id for _, outcome in done for run_id in outcome.runs]
        wait_finished(every, TIMEOUT)  # stragglers get their chance before the verdict
        for number, outcome in done:
            runs = [inspect(run_id) for run_id in outcome.runs]
            rows.append(_row(number, outcome, runs))
            details[outcome.fault] = {
                "runs": runs,
                "crashes": outcome.crashes,
                "fault_times": outcome.fault_times,
                "note": outcome.note,
                **outcome.extra,
            }
        lost = [r for o in details.values() for r in o["runs"] if r["status"] not in FINISHED]
        rows.append(
            FaultRow(
                "-",
                "runs lost (still unfinished at the end)",
                runs=f"{len(lost)} of {len(every)}",
                note=f"after {TIMEOUT:g} s per fault",
            )
        )
    rows.sort(key=lambda row: int(row.number) if row.number.isdigit() else 99)
    title = f"make faults: offline model {LATENCY_MS} ms per call, seed {SEED}; {detection}"
    result = report.write(
        OUTPUT,
        title=title,
        rows=rows,
        speed=(speed, report.reference_loop_us()),
        details={**details, "seconds": time.monotonic() - started},
        columns=COLUMNS,
    )
    print()
    print(result["markdown"])
    shown = OUTPUT.relative_to(ROOT) if OUTPUT.is_relative_to(ROOT) else OUTPUT
    print(f"written to {shown} and {shown.with_suffix('.md')}")
    return 0


if __name__ == "__main__":
    stop_on_termination()
    sys.exit(main())
