"""SSE through a live daphne process (the production ASGI server) on the test database."""

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from pipeline.events import publish
from pipeline.models import Run
from tests.conftest import access_token_for
from tests.net import subprocess_env, web_server

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(scope="module")
def daphne_url(django_db_setup: Any) -> Iterator[str]:
    """A daphne serving config.asgi on a free port, pointed at this test run's database."""
    env = subprocess_env(EVENTS_POLL_SECONDS="0.1", EVENTS_SSE_HEARTBEAT_SECONDS="1")
    with web_server(module="daphne", env=env) as (url, _):
        yield url


def _read_messages(lines: Iterator[str], *, until_seq: int) -> list[dict[str, Any]]:
    """Read SSE ``data:`` lines until the event with ``until_seq`` arrived."""
    messages: list[dict[str, Any]] = []
    for line in lines:
        if line.startswith("data: "):
            messages.append(json.loads(line.removeprefix("data: ")))
            if messages[-1]["seq"] >= until_seq:
                break
    return messages


def test_daphne_streams_backlog_then_live_events_and_replays_after_last_event_id(
    daphne_url: str, project: Any, user: Any
) -> None:
    run = Run.objects.create(project=project, created_by=user, prompt="p")
    publish(run_id=run.pk, type="run.started")
    publish(run_id=run.pk, type="stage.started", payload={"stage": "design"})
    headers = {"Authorization": f"Bearer {access_token_for(user)}"}
    url = f"{daphne_url}/runs/{run.pk}/events"

    with httpx.stream("GET", url, headers=headers, timeout=30) as response:
        lines = response.iter_lines()
        backlog = _read_messages(lines, until_seq=2)
        publish(run_id=run.pk, type="step.started", payload={"role": "architect"})
        publish(run_id=run.pk, type="run.completed")
        live = [json.loads(line[6:]) for line in lines if line.startswith("data: ")]
    with httpx.stream("GET", url, headers={**headers, "Last-Event-ID": "1"}, timeout=30) as again:
        replay = [json.loads(line[6:]) for line in again.iter_lines() if line.startswith("data: ")]

    assert (
        [e["seq"] for e in backlog],
        [(e["seq"], e["type"]) for e in live],
        [e["seq"] for e in replay],
    ) == ([1, 2], [(3, "step.started"), (4, "run.completed")], [2, 3, 4])


def test_daphne_answers_404_for_another_users_run(
    daphne_url: str, project: Any, other_user: Any
) -> None:
    run = Run.objects.create(project=project, prompt="p")
    headers = {"Authorization": f"Bearer {access_token_for(other_user)}"}

    response = httpx.get(f"{daphne_url}/runs/{run.pk}/events", headers=headers, timeout=30)

    assert response.status_code == 404
