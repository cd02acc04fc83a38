"""The durability rules of one step and one run, without a worker."""

from datetime import timedelta
from typing import Any

import pytest
from django.db import connection
from django.utils import timezone

from pipeline import canvas
from pipeline.flow import Next
from pipeline.models import Event, Run, Step
from pipeline.services import run_reap_stale
from pipeline.services.steps import StepBusy, StepSpec, step_run

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def run(project: Any) -> Run:
    return Run.objects.create(
        project=project,
        created_by=project.owner,
        prompt="A stopwatch",
        status=Run.Status.RUNNING,
        heartbeat_at=timezone.now(),
    )


def never(*_: Any) -> dict:
    raise AssertionError("the model must not be called")


def test_a_succeeded_step_returns_its_stored_output_without_calling_the_model(run: Run) -> None:
    Step.objects.create(run=run, role="coder", key="k", status="succeeded", output={"a": 1})

    output = step_run(
        run_id=run.id, spec=StepSpec(role="coder", key="k"), prepare=never, execute=never
    )

    assert output == {"a": 1}
    assert Step.objects.filter(run=run).count() == 1


def test_a_step_held_by_a_live_worker_is_busy(run: Run) -> None:
    Step.objects.create(
        run=run, role="coder", key="k", status="running", heartbeat_at=timezone.now()
    )

    with pytest.raises(StepBusy):
        step_run(run_id=run.id, spec=StepSpec(role="coder", key="k"), prepare=never, execute=never)


def test_a_step_whose_worker_died_is_taken_over(run: Run, settings: Any) -> None:
    old = timezone.now() - timedelta(seconds=settings.PIPELINE_STALE_SECONDS + 5)
    Step.objects.create(run=run, role="coder", key="k", status="running", heartbeat_at=old)

    output = step_run(
        run_id=run.id,
        spec=StepSpec(role="coder", key="k"),
        prepare=lambda run, step: None,
        execute=lambda prepared, ledger: {"done": True},
    )

    assert output == {"done": True}
    assert Step.objects.get(run=run, key="k").status == Step.Status.SUCCEEDED


def test_no_database_connection_is_held_during_the_model_call(run: Run) -> None:
    output = step_run(
        run_id=run.id,
        spec=StepSpec(role="coder", key="k"),
        prepare=lambda run, step: None,
        execute=lambda prepared, ledger: {"connected": connection.connection is not None},
    )

    assert output == {"connected": False}


def test_a_step_of_a_cancelled_run_does_not_start(run: Run) -> None:
    from pipeline.services import RunStopped

    Run.objects.filter(id=run.id).update(status=Run.Status.CANCELLED)

    with pytest.raises(RunStopped):
        step_run(run_id=run.id, spec=StepSpec(role="coder", key="k"), prepare=never, execute=never)
    assert not Step.objects.filter(run=run).exists()


def test_the_reaper_resumes_a_run_whose_heartbeat_is_stale(run: Run, settings: Any) -> None:
    old = timezone.now() - timedelta(seconds=settings.PIPELINE_STALE_SECONDS + 5)
    Run.objects.filter(id=run.id).update(heartbeat_at=old)
    Step.objects.create(run=run, role="coder", key="k", status="running", heartbeat_at=old)
    Step.objects.create(run=run, role="architect", key="d", status="succeeded", output={})

    assert run_reap_stale() == [run.id]

    run.refresh_from_db()
    assert (run.status, run.resume_count) == (Run.Status.QUEUED, 1)
    assert dict(Step.objects.filter(run=run).values_list("key", "status")) == {
        "k": "pending",
        "d": "succeeded",
    }
    assert Event.objects.filter(run=run).order_by("-seq").first().type == "run.resumed"


def test_the_reaper_leaves_a_live_run_alone(run: Run) -> None:
    assert run_reap_stale() == []


def test_cancel_revokes_the_tasks_the_run_queued(run: Run, project: Any) -> None:
    sig = canvas.canvas_for(run.id, Next.design(1))
    sig.freeze()
    canvas.canvas_remember(run_id=run.id, sig=sig)

    assert canvas.canvas_revoke(run_id=run.id) == 2
    assert canvas.canvas_revoke(run_id=run.id) == 0


def test_usage_lands_on_step_and_run_and_warns_once_past_80_percent_of_budget(
    run: Run,
) -> None:
    from decimal import Decimal

    from pipeline.services.steps import StepLedger
    from providers.types import Completion

    Run.objects.filter(id=run.id).update(budget_usd=Decimal("1.00"))
    step = Step.objects.create(run=run, role="coder", key="k", status="running")
    ledger = StepLedger(run_id=run.id, step_id=step.id, step_key="k", budget_usd=Decimal("1.00"))
    usage = Completion(
        text="{}",
        parsed=None,
        tokens_in=100,
        tokens_out=50,
        cost_usd=Decimal("0.45"),
        model="m",
        provider="p",
        latency_ms=12,
    )

    ledger.record_usage(usage)
    ledger.record_usage(usage)

    run.refresh_from_db()
    step.refresh_from_db()
    assert (step.tokens_in, step.tokens_out, step.llm_calls, step.model) == (200, 100, 2, "m")
    assert (run.tokens_in, run.cost_usd) == (200, Decimal("0.90"))
    assert ledger.remaining_budget_usd() == Decimal("0.10")
    assert Event.objects.filter(run=run, type="budget.warning").count() == 1


def test_resume_leaves_a_step_a_live_worker_still_runs(run: Run) -> None:
    from pipeline.services import run_resume

    Run.objects.filter(id=run.id).update(status=Run.Status.CANCELLED)
    Step.objects.create(
        run=run, role="coder", key="live", status="running", heartbeat_at=timezone.now()
    )
    Step.objects.create(run=run, role="coder", key="failed", status="failed")

    run_resume(run=run)

    assert dict(Step.objects.filter(run=run).values_list("key", "status")) == {
        "live": "running",
        "failed": "pending",
    }


def test_retrying_a_failed_step_resumes_its_run_with_the_step_pending(run: Run) -> None:
    from pipeline.services import step_retry

    Run.objects.filter(id=run.id).update(status=Run.Status.FAILED, error_code="provider_failed")
    step = Step.objects.create(run=run, role="coder", key="k", status="failed", error="boom")

    step = step_retry(step=step)

    run.refresh_from_db()
    assert (step.status, step.error) == (Step.Status.PENDING, "")
    assert (run.status, run.error_code) == (Run.Status.QUEUED, "")


def test_retrying_a_succeeded_step_is_a_conflict(run: Run) -> None:
    from common.errors import Conflict
    from pipeline.services import step_retry

    step = Step.objects.create(run=run, role="coder", key="k", status="succeeded")

    with pytest.raises(Conflict):
        step_retry(step=step)


def test_a_long_model_call_keeps_the_step_heartbeat_fresh(run: Run, settings: Any) -> None:
    import time

    settings.PIPELINE_HEARTBEAT_SECONDS = 0.2

    step_run(
        run_id=run.id,
        spec=StepSpec(role="coder", key="k"),
        prepare=lambda run, step: None,
        execute=lambda prepared, ledger: time.sleep(1) or {},
    )

    step = Step.objects.get(run=run, key="k")
    assert step.started_at < step.heartbeat_at < step.finished_at


# --- stored answers: a paid call is never made again --------------------------------------


def ask_offline(prepared: Any, ledger: Any) -> dict:
    """A step body that asks the offline model once, through ``complete``."""
    from providers.services import complete

    context = f'<context>{{"kind": "note", "run": {ledger.run_id}, "step": "k"}}</context>'
    completion = complete(role="coder", messages=[{"role": "user", "content": context}], run=ledger)
    return {"text": completion.text, "replayed": completion.replayed}


def stale_running_step(run: Run, settings: Any) -> Step:
    old = timezone.now() - timedelta(seconds=settings.PIPELINE_STALE_SECONDS + 5)
    return Step.objects.create(run=run, role="coder", key="k", status="running", heartbeat_at=old)


def test_an_answer_is_stored_with_its_usage_the_moment_it_arrives(run: Run) -> None:
    from pipeline.models import StepCall

    seen: dict[str, Any] = {}

    def ask_then_look(prepared: Any, ledger: Any) -> dict:
        answer = ask_offline(prepared, ledger)
        step = Step.objects.get(run=run, key="k")
        seen["call"] = StepCall.objects.values("ordinal", "text", "tokens_in").get(step=step)
        seen["usage"] = (step.status, step.llm_calls, step.tokens_in)
        seen["run_tokens"] = Run.objects.get(id=run.id).tokens_in
        return answer

    output = step_run(
        run_id=run.id,
        spec=StepSpec(role="coder", key="k"),
        prepare=lambda r, s: None,
        execute=ask_then_look,
    )

    tokens = seen["call"]["tokens_in"]
    assert seen["call"]["ordinal"] == 0
    assert seen["call"]["text"] == output["text"]
    assert seen["usage"] == ("running", 1, tokens)
    assert seen["run_tokens"] == tokens > 0


def test_a_step_taken_over_replays_its_stored_answer_and_pays_nothing_more(
    run: Run, settings: Any
) -> None:
    from decimal import Decimal

    from pipeline.models import StepCall
    from providers.offline.answers import calls_for

    step = stale_running_step(run, settings)
    Step.objects.filter(id=step.id).update(tokens_in=40, cost_usd=Decimal("0.5"), llm_calls=1)
    Run.objects.filter(id=run.id).update(tokens_in=40, cost_usd=Decimal("0.5"))
    StepCall.objects.create(
        step=step,
        ordinal=0,
        provider="offline",
        model="offline",
        text="paid before",
        tokens_in=40,
        cost_usd=Decimal("0.5"),
    )

    output = step_run(
        run_id=run.id,
        spec=StepSpec(role="coder", key="k"),
        prepare=lambda r, s: None,
        execute=ask_offline,
    )

    step.refresh_from_db()
    run.refresh_from_db()
    assert output == {"text": "paid before", "replayed": True}
    assert calls_for(run.id) == {}
    assert (step.status, step.llm_calls, step.tokens_in, step.cost_usd) == (
        "succeeded",
        1,
        40,
        Decimal("0.5"),
    )
    assert (run.tokens_in, run.cost_usd) == (40, Decimal("0.5"))
    assert StepCall.objects.filter(step=step).count() == 1


def test_a_call_cut_off_before_its_answer_is_made_again(run: Run, settings: Any) -> None:
    from providers.offline.answers import calls_for

    step = stale_running_step(run, settings)

    output = step_run(
        run_id=run.id,
        spec=StepSpec(role="coder", key="k"),
        prepare=lambda r, s: None,
        execute=ask_offline,
    )

    step.refresh_from_db()
    assert output["replayed"] is False
    assert calls_for(run.id) == {"k": 1}
    assert (step.status, step.llm_calls) == ("succeeded", 1)


def test_a_failed_step_asks_the_model_anew_when_it_runs_again(run: Run) -> None:
    from pipeline.models import StepCall
    from providers.offline.answers import calls_for

    def ask_then_break(prepared: Any, ledger: Any) -> dict:
        ask_offline(prepared, ledger)
        raise ValueError("the answer could not be used")

    spec = StepSpec(role="coder", key="k")
    with pytest.raises(ValueError):
        step_run(run_id=run.id, spec=spec, prepare=lambda r, s: None, execute=ask_then_break)
    Step.objects.filter(run=run, key="k").update(status=Step.Status.PENDING)

    output = step_run(run_id=run.id, spec=spec, prepare=lambda r, s: None, execute=ask_offline)

    assert output["replayed"] is False
    assert calls_for(run.id) == {"k": 2}
    assert list(StepCall.objects.filter(step__key="k").values_list("ordinal", "retired")) == [
        (0, True),
        (1, False),
    ]


def test_a_fault_point_holds_the_worker_right_after_an_answer_is_stored(
    run: Run, settings: Any
) -> None:
    from pipeline.faults import fault_held, fault_script_set

    settings.PIPELINE_FAULT_POINTS = True
    fault_script_set([{"point": "answer_stored", "step": "k", "seconds": 0.1}])

    step_run(
        run_id=run.id,
        spec=StepSpec(role="coder", key="k"),
        prepare=lambda r, s: None,
        execute=ask_offline,
    )

    assert fault_held() == [{"point": "answer_stored", "step": "k"}]


def test_the_reaper_is_in_the_beat_schedule_every_few_seconds() -> None:
    from config.celery import app

    reapers = [
        entry
        for entry in app.conf.beat_schedule.values()
        if entry["task"] == "pipeline.reap_stale_runs"
    ]

    assert len(reapers) == 1
    assert reapers[0]["schedule"].total_seconds() <= 5
    assert reapers[0]["options"]["queue"] == "default"


def test_the_reaper_resumes_a_run_whose_step_holder_stopped_beating_at_once(
    run: Run, settings: Any
) -> None:
    settings.PIPELINE_QUIET_SECONDS = 3600
    old = timezone.now() - timedelta(seconds=settings.PIPELINE_STALE_SECONDS + 1)
    Step.objects.create(run=run, role="coder", key="dead", status="running", heartbeat_at=old)
    Step.objects.create(
        run=run, role="coder", key="live", status="running", heartbeat_at=timezone.now()
    )

    assert run_reap_stale() == [run.id]
    assert dict(Step.objects.filter(run=run).values_list("key", "status")) == {
        "dead": "pending",
        "live": "running",
    }


def test_the_reaper_resumes_a_quiet_run_only_after_the_quiet_bound(run: Run, settings: Any) -> None:
    settings.PIPELINE_QUIET_SECONDS = 60
    Run.objects.filter(id=run.id).update(heartbeat_at=timezone.now() - timedelta(seconds=30))
    assert run_reap_stale() == []  # its next task may be waiting behind busy workers

    Run.objects.filter(id=run.id).update(heartbeat_at=timezone.now() - timedelta(seconds=61))
    assert run_reap_stale() == [run.id]


def test_a_model_call_longer_than_the_stale_bound_is_never_taken_over(
    run: Run, settings: Any
) -> None:
    import threading
    import time

    from django.db import connections

    settings.PIPELINE_HEARTBEAT_SECONDS = 0.2
    settings.PIPELINE_STALE_SECONDS = 1.0
    reaped: list[int] = []
    done = threading.Event()

    def reaper() -> None:
        try:
            while not done.is_set():
                reaped.extend(run_reap_stale())
                time.sleep(0.1)
        finally:
            connections.close_all()

    looking = threading.Thread(target=reaper)
    looking.start()
    try:
        step_run(
            run_id=run.id,
            spec=StepSpec(role="coder", key="k"),
            prepare=lambda run, step: None,
            execute=lambda prepared, ledger: time.sleep(4) or {"done": True},
        )
    finally:
        done.set()
        looking.join()

    run.refresh_from_db()
    assert reaped == []
    assert (run.status, run.resume_count) == (Run.Status.RUNNING, 0)
    assert Step.objects.get(run=run, key="k").status == Step.Status.SUCCEEDED


def test_a_step_costs_two_statements_its_claim_with_its_start_and_its_store(run: Run) -> None:
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as before:
        step_run(
            run_id=run.id,
            spec=StepSpec(role="coder", key="k"),
            prepare=lambda run, step: None,
            execute=lambda prepared, ledger: {"done": True},
            run=run,
        )

    statements = [q["sql"].split()[0:4] for q in before.captured_queries]
    assert len(statements) == 2, statements
    assert list(Event.objects.filter(run=run).order_by("seq").values_list("type", flat=True)) == [
        "step.started",
        "step.completed",
    ]


# --- a step's last answer is stored with its output ---------------------------------------


def priced_answer() -> Any:
    from decimal import Decimal

    from providers.types import Completion

    return Completion(
        text="fine",
        parsed=None,
        tokens_in=10,
        tokens_out=40,
        cost_usd=Decimal("0.05"),
        model="priced",
        provider="vendor",
        latency_ms=7,
    )


def ask_priced_last(prepared: Any, ledger: Any) -> dict:
    """A step body whose output follows from one priced answer, as ``model_call(last=True)``
    makes it: the call reserved, then answered."""
    from decimal import Decimal

    ledger.hold_last = True
    ledger.reserve(amount_usd=Decimal("0.10"), daily_cap_usd=None)
    ledger.record_usage(priced_answer())
    return {"text": "fine"}


def paid_rows(run: Run) -> tuple[Any, ...]:
    """What a paid call left: the step's status and usage, its calls, the run's usage, the
    spend ledger's rows and what the user's window still holds in reservations."""
    from pipeline.models import StepCall
    from spending.models import SpendEntry, SpendWindow

    step = Step.objects.get(run=run, key="k")
    run.refresh_from_db()
    return (
        (step.status, step.llm_calls, step.tokens_in, step.cost_usd),
        list(StepCall.objects.filter(step=step).values_list("ordinal", "text", "retired")),
        (run.tokens_in, run.cost_usd),
        list(SpendEntry.objects.filter(run_ref=run.id).values_list("step_key", "cost_usd")),
        SpendWindow.objects.get(user=run.created_by).reservations,
    )


def test_a_steps_last_answer_is_stored_with_its_output_in_the_same_statement(run: Run) -> None:
    from decimal import Decimal

    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as sent:
        step_run(
            run_id=run.id,
            spec=StepSpec(role="coder", key="k"),
            prepare=lambda r, s: None,
            execute=ask_priced_last,
            run=run,
        )

    completed = Event.objects.get(run=run, type="step.completed")
    # The claim, the call's reservation, and the store that carries the answer.
    assert len(sent.captured_queries) == 3
    assert paid_rows(run) == (
        ("succeeded", 1, 10, Decimal("0.05")),
        [(0, "fine", False)],
        (10, Decimal("0.05")),
        [("k", Decimal("0.05"))],
        {},
    )
    assert (completed.payload["tokens_in"], completed.payload["provider"]) == (10, "vendor")


def test_a_held_answer_whose_output_cannot_be_built_is_stored_on_its_own(run: Run) -> None:
    from decimal import Decimal

    def ask_then_break(prepared: Any, ledger: Any) -> dict:
        ask_priced_last(prepared, ledger)
        raise ValueError("the answer could not be used")

    with pytest.raises(ValueError):
        step_run(
            run_id=run.id,
            spec=StepSpec(role="coder", key="k"),
            prepare=lambda r, s: None,
            execute=ask_then_break,
        )

    # Paid for and kept (retired, as every call of a failed step), spent once.
    assert paid_rows(run) == (
        ("failed", 1, 10, Decimal("0.05")),
        [(0, "fine", True)],
        (10, Decimal("0.05")),
        [("k", Decimal("0.05"))],
        {},
    )


def test_a_held_answer_of_a_step_handed_back_meanwhile_is_stored_on_its_own(run: Run) -> None:
    from decimal import Decimal

    def ask_then_lose_the_step(prepared: Any, ledger: Any) -> dict:
        output = ask_priced_last(prepared, ledger)
        Step.objects.filter(run=run, key="k").update(status=Step.Status.PENDING)
        return output

    step_run(
        run_id=run.id,
        spec=StepSpec(role="coder", key="k"),
        prepare=lambda r, s: None,
        execute=ask_then_lose_the_step,
    )

    # Not stored as the step's output, but its answer is there for whoever runs it next.
    assert paid_rows(run) == (
        ("pending", 1, 10, Decimal("0.05")),
        [(0, "fine", False)],
        (10, Decimal("0.05")),
        [("k", Decimal("0.05"))],
        {},
    )


def test_a_held_answer_is_stored_on_its_own_before_the_next_call(run: Run) -> None:
    from decimal import Decimal

    from pipeline.models import StepCall

    seen: dict[str, Any] = {}

    def ask_twice(prepared: Any, ledger: Any) -> dict:
        ask_priced_last(prepared, ledger)  # a first answer (say, one to repair) ...
        ledger.reserve(amount_usd=Decimal("0.10"), daily_cap_usd=None)  # ... then another call
        seen["calls"] = list(StepCall.objects.values_list("ordinal", flat=True))
        ledger.record_usage(priced_answer())
        return {"text": "fine"}

    step_run(
        run_id=run.id,
        spec=StepSpec(role="coder", key="k"),
        prepare=lambda r, s: None,
        execute=ask_twice,
    )

    assert seen["calls"] == [0]
    assert paid_rows(run)[:3] == (
        ("succeeded", 2, 20, Decimal("0.10")),
        [(0, "fine", False), (1, "fine", False)],
        (20, Decimal("0.10")),
    )


def test_a_fault_point_holds_the_worker_right_after_a_held_answer_is_stored_with_the_output(
    run: Run, settings: Any
) -> None:
    from pipeline.faults import fault_held, fault_script_set

    settings.PIPELINE_FAULT_POINTS = True
    fault_script_set([{"point": "answer_stored", "step": "k", "seconds": 0.1}])

    step_run(
        run_id=run.id,
        spec=StepSpec(role="coder", key="k"),
        prepare=lambda r, s: None,
        execute=ask_priced_last,
    )

    assert fault_held() == [{"point": "answer_stored", "step": "k"}]


# --- a stage's edge with its first step's claim --------------------------------------------


def test_a_stages_first_step_records_the_edge_with_its_claim(run: Run) -> None:
    from django.test.utils import CaptureQueriesContext

    from pipeline.services.steps import StageEdge

    Run.objects.filter(id=run.id).update(status=Run.Status.QUEUED)
    edge = StageEdge(
        stage="coding",
        edge="started",
        status=Run.Status.RUNNING,
        from_statuses=(Run.Status.QUEUED,),
        started=True,
    )

    with CaptureQueriesContext(connection) as sent:
        step_run(
            run_id=run.id,
            spec=StepSpec(role="orchestrator", key="k", edge=edge),
            prepare=lambda r, s: None,
            execute=lambda prepared, ledger: {"done": True},
        )

    run.refresh_from_db()
    events = Event.objects.filter(run=run).order_by("seq")
    # The run's read, the claim with the edge, the store.
    assert len(sent.captured_queries) == 3
    assert [(e.seq, e.type) for e in events] == [
        (1, "stage.started"),
        (2, "step.started"),
        (3, "step.completed"),
    ]
    assert (run.status, run.started_at is not None) == (Run.Status.RUNNING, True)
    assert set(run.stages["coding"]) == {"started_at"}


def test_a_stages_edge_is_recorded_when_its_first_step_answers_from_its_row(run: Run) -> None:
    from pipeline.services.steps import StageEdge

    Step.objects.create(run=run, role="tester", key="k", status="succeeded", output={"a": 1})

    output = step_run(
        run_id=run.id,
        spec=StepSpec(role="tester", key="k", edge=StageEdge(stage="integrate", edge="started")),
        prepare=lambda r, s: None,
        execute=never,
    )

    run.refresh_from_db()
    assert output == {"a": 1}
    assert list(Event.objects.filter(run=run).values_list("type", flat=True)) == ["stage.started"]
    assert set(run.stages["integrate"]) == {"started_at"}
