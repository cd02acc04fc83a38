"""A worker killed between a step's store and the send of what follows: the reaper resumes
the run once the worker's liveness key lapses, not after the quiet bound."""

import time
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from pipeline.models import Event, Run, Step
from pipeline.services import run_reap_stale
from pipeline.services.liveness import (
    KEY_PREFIX,
    worker_beat,
    worker_id,
    worker_left,
    workers_gone,
)
from pipeline.services.steps import StepSpec, step_run
from providers.redis_client import get_redis

pytestmark = pytest.mark.django_db(transaction=True)

DEAD = "gone-host:4242:0badf00d"


@pytest.fixture
def handed_off(project: Any, settings: Any) -> Run:
    """A run whose last step was stored by DEAD, with no step running since, quiet a little
    past the stale bound and far inside the quiet bound."""
    settings.PIPELINE_QUIET_SECONDS = 3600
    run = Run.objects.create(
        project=project,
        created_by=project.owner,
        prompt="A stopwatch",
        status=Run.Status.RUNNING,
        heartbeat_at=timezone.now() - timedelta(seconds=settings.PIPELINE_STALE_SECONDS + 1),
        stored_by=DEAD,
    )
    Step.objects.create(run=run, role="architect", key="d", status="succeeded", output={})
    return run


def test_a_step_s_store_names_this_process_and_its_heartbeat_keeps_it_alive(
    project: Any,
) -> None:
    run = Run.objects.create(
        project=project, created_by=project.owner, prompt="x", status=Run.Status.RUNNING
    )

    step_run(
        run_id=run.id,
        spec=StepSpec(role="coder", key="k"),
        prepare=lambda run, step: None,
        execute=lambda prepared, ledger: {"done": True},
    )

    run.refresh_from_db()
    assert run.stored_by == worker_id()
    deadline = time.monotonic() + 10  # the heartbeat thread beats every PIPELINE_HEARTBEAT
    while get_redis().get(KEY_PREFIX + worker_id()) is None and time.monotonic() < deadline:
        time.sleep(0.1)
    assert workers_gone([worker_id()]) == set()


def test_the_reaper_resumes_a_quiet_run_whose_storer_died(handed_off: Run) -> None:
    assert run_reap_stale() == [handed_off.id]

    handed_off.refresh_from_db()
    assert (handed_off.status, handed_off.resume_count) == (Run.Status.QUEUED, 1)
    assert handed_off.stored_by == ""  # the resume sent what follows: nothing to watch
    resumed = Event.objects.filter(run=handed_off).order_by("-seq").first()
    assert (resumed.type, resumed.payload) == ("run.resumed", {"reason": "worker_lost"})
    assert run_reap_stale() == []


def test_the_reaper_leaves_a_run_whose_storer_lives_however_long_it_waits(
    handed_off: Run,
) -> None:
    worker_beat(DEAD)  # not dead after all: the run's next task waits behind busy workers

    assert run_reap_stale() == []


def test_the_reaper_leaves_a_run_whose_storer_stopped_cleanly(handed_off: Run) -> None:
    worker_left(DEAD)

    assert run_reap_stale() == []


def test_the_reaper_waits_for_the_stale_bound(handed_off: Run) -> None:
    Run.objects.filter(id=handed_off.id).update(heartbeat_at=timezone.now())

    assert run_reap_stale() == []


def test_a_running_step_is_the_heartbeat_rule_s_not_this_one(handed_off: Run) -> None:
    Step.objects.create(
        run=handed_off, role="coder", key="k", status="running", heartbeat_at=timezone.now()
    )

    assert run_reap_stale() == []


def test_a_finished_run_is_left_alone(handed_off: Run) -> None:
    Run.objects.filter(id=handed_off.id).update(status=Run.Status.COMPLETED)

    assert run_reap_stale() == []


def test_without_redis_no_storer_is_taken_for_dead(handed_off: Run, monkeypatch: Any) -> None:
    class Away:
        def mget(self, keys: Any) -> Any:
            raise ConnectionError("Redis is away")

    monkeypatch.setattr("pipeline.services.liveness.get_redis", lambda: Away())

    assert run_reap_stale() == []  # the quiet bound stays the net


def test_a_liveness_key_lapses_after_the_stale_bound(settings: Any) -> None:
    settings.PIPELINE_STALE_SECONDS = 0.3
    worker_beat("brief:1:1")
    assert workers_gone(["brief:1:1"]) == set()

    time.sleep(0.5)
    assert workers_gone(["brief:1:1"]) == {"brief:1:1"}


def test_a_worker_that_stops_cleanly_says_so_and_one_that_fails_does_not(
    settings: Any,
) -> None:
    from config.celery import _mark_worker_left
    from pipeline.services.heartbeats import storer

    settings.PIPELINE_QUIET_SECONDS = 60
    key = KEY_PREFIX + storer()
    get_redis().delete(key)

    _mark_worker_left(exitcode=1)  # a pool child that crashed
    assert get_redis().get(key) in (None, b"alive")  # at most its heartbeat thread's beat

    _mark_worker_left(exitcode=0)
    assert get_redis().get(key) == b"left"
    assert 0 < get_redis().pttl(key) <= 60_000
