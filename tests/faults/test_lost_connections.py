"""A lost PostgreSQL or Redis connection is a transient error: no step or run fails for it,
and no answer already paid for is bought again.

The connections are really lost: a backend is ended with ``pg_terminate_backend``, Redis is a
port nothing listens on. The step bodies ask the offline model, which counts its answered
calls per step key (``calls_for``).
"""

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from celery import Task, shared_task
from django.db import OperationalError, connection
from django.utils import timezone
from redis.backoff import NoBackoff
from redis.retry import Retry

from pipeline.models import Run, Step, StepCall
from pipeline.services.steps import StepSpec, step_run
from pipeline.tasks import _guarded
from pipeline.transient import drop_connection
from providers import redis_client
from providers.offline.answers import calls_for
from tests.net import free_port
from tests.pipeline.conftest import wait_for_run

pytestmark = [pytest.mark.faults, pytest.mark.django_db(transaction=True)]


@pytest.fixture(autouse=True)
def _forget_a_dead_connection(transactional_db: Any) -> Iterator[None]:
    """A test that fails leaves no killed connection behind for the next one."""
    yield
    drop_connection()


@pytest.fixture
def run(project: Any) -> Run:
    return Run.objects.create(
        project=project,
        created_by=project.owner,
        prompt="A stopwatch",
        status=Run.Status.RUNNING,
        heartbeat_at=timezone.now(),
    )


def ask_offline(ledger: Any) -> dict:
    """Ask the offline model once through ``complete``, as every step body does."""
    from providers.services import complete

    context = f'<context>{{"kind": "note", "run": {ledger.run_id}, "step": "k"}}</context>'
    completion = complete(role="coder", messages=[{"role": "user", "content": context}], run=ledger)
    return {"text": completion.text, "replayed": completion.replayed}


def terminate_own_backend() -> None:
    """End this thread's PostgreSQL backend from another session; Django keeps the corpse."""
    import psycopg

    connection.ensure_connection()
    pid = connection.connection.info.backend_pid
    params = connection.get_connection_params()
    params.pop("cursor_factory", None)
    with psycopg.connect(**params, autocommit=True) as killer:
        killer.execute("SELECT pg_terminate_backend(%s)", (pid,))


def test_a_connection_killed_before_a_model_call_is_replaced_and_the_call_made_once(
    run: Run,
) -> None:
    def execute(prepared: Any, ledger: Any) -> dict:
        terminate_own_backend()  # the connection the answer will be stored on is dead
        return ask_offline(ledger)

    output = step_run(
        run_id=run.id,
        spec=StepSpec(role="coder", key="k"),
        prepare=lambda r, s: None,
        execute=execute,
    )

    step = Step.objects.get(run=run, key="k")
    assert output["replayed"] is False
    assert calls_for(run.id) == {"k": 1}
    assert (step.status, step.llm_calls) == (Step.Status.SUCCEEDED, 1)
    assert list(StepCall.objects.filter(step=step).values_list("text", flat=True)) == [
        output["text"]
    ]


def kill_the_statement_that_waits_on(
    run_id: int, table: str, killed: threading.Event
) -> threading.Thread:
    """Lock the run's row; end the backend that waits on it with a statement on ``table``."""
    import psycopg

    params = connection.get_connection_params()
    params.pop("cursor_factory", None)
    locked = threading.Event()

    def lock_then_kill() -> None:
        with (
            psycopg.connect(**params) as blocker,
            psycopg.connect(**params, autocommit=True) as killer,
        ):
            blocker.execute("SELECT 1 FROM pipeline_run WHERE id = %s FOR UPDATE", (run_id,))
            locked.set()
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                row = killer.execute(
                    "SELECT pid FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                    "AND query LIKE %s",
                    (f"%{table}%",),
                ).fetchone()
                if row:
                    killer.execute("SELECT pg_terminate_backend(%s)", row)
                    killed.set()
                    break
                time.sleep(0.02)
            blocker.rollback()

    thread = threading.Thread(target=lock_then_kill)
    thread.start()
    locked.wait(10)
    return thread


def test_an_answer_whose_connection_dies_while_it_is_stored_is_stored_once_not_bought_again(
    run: Run,
) -> None:
    killer: list[threading.Thread] = []
    killed = threading.Event()

    def execute(prepared: Any, ledger: Any) -> dict:
        killer.append(kill_the_statement_that_waits_on(run.id, "pipeline_stepcall", killed))
        return ask_offline(ledger)

    output = step_run(
        run_id=run.id,
        spec=StepSpec(role="coder", key="k"),
        prepare=lambda r, s: None,
        execute=execute,
    )
    killer[0].join()

    step = Step.objects.get(run=run, key="k")
    run.refresh_from_db()
    assert killed.is_set()
    assert calls_for(run.id) == {"k": 1}
    assert (step.status, step.llm_calls) == (Step.Status.SUCCEEDED, 1)
    assert run.tokens_in == step.tokens_in > 0
    assert list(StepCall.objects.filter(step=step).values_list("text", flat=True)) == [
        output["text"]
    ]


def test_a_step_that_lost_its_connection_after_paying_goes_back_pending_and_replays(
    run: Run,
) -> None:
    spec = StepSpec(role="coder", key="k")

    def pay_then_lose_the_connection(prepared: Any, ledger: Any) -> dict:
        ask_offline(ledger)
        terminate_own_backend()
        Step.objects.filter(run=run).count()  # meets the dead connection
        return {}

    with pytest.raises(OperationalError):
        step_run(
            run_id=run.id,
            spec=spec,
            prepare=lambda r, s: None,
            execute=pay_then_lose_the_connection,
        )
    handed_back = Step.objects.get(run=run, key="k").status

    output = step_run(
        run_id=run.id,
        spec=spec,
        prepare=lambda r, s: None,
        execute=lambda p, ledger: ask_offline(ledger),
    )

    run.refresh_from_db()
    assert handed_back == Step.Status.PENDING
    assert output["replayed"] is True
    assert calls_for(run.id) == {"k": 1}
    assert run.status == Run.Status.RUNNING
    assert list(StepCall.objects.filter(step__run=run).values_list("retired", flat=True)) == [False]


def test_a_model_call_while_redis_is_unreachable_succeeds_and_its_answer_is_stored(
    run: Run, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Circuits, cache and call stats live on this client; nothing listens on its port.
    dead = redis.Redis(port=free_port(), retry=Retry(NoBackoff(), 0))
    monkeypatch.setitem(redis_client._clients, settings.REDIS_URL, dead)

    output = step_run(
        run_id=run.id,
        spec=StepSpec(role="coder", key="k"),
        prepare=lambda r, s: None,
        execute=lambda prepared, ledger: ask_offline(ledger),
    )

    step = Step.objects.get(run=run, key="k")
    assert calls_for(run.id) == {"k": 1}
    assert (step.status, step.llm_calls) == (Step.Status.SUCCEEDED, 1)
    assert StepCall.objects.get(step=step).text == output["text"]


# --- a task that meets a lost connection, on a real worker ----------------------------------

ATTEMPTS: dict[int, int] = {}


@shared_task(bind=True, name="tests.faults.lose_the_connection_once", ignore_result=True)
def lose_the_connection_once(self: Task, run_id: int) -> None:
    """A stage whose first attempt meets a database connection killed under it."""

    def body() -> None:
        ATTEMPTS[run_id] = ATTEMPTS.get(run_id, 0) + 1
        if ATTEMPTS[run_id] == 1:
            terminate_own_backend()
        Run.objects.filter(id=run_id).update(heartbeat_at=timezone.now())

    _guarded(self, run_id, body)


def test_a_task_that_meets_a_killed_connection_is_tried_again_and_the_run_goes_on(
    celery_worker: Any, run: Run
) -> None:
    sent = timezone.now()
    lose_the_connection_once.apply_async(args=(run.id,), queue="default")

    run = wait_for_run(run.id, lambda r: r.heartbeat_at > sent or r.is_finished, timeout=30)

    assert ATTEMPTS[run.id] == 2
    assert (run.status, run.error_code) == (Run.Status.RUNNING, "")
