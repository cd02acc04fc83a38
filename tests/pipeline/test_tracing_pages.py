"""The run page and GET /runs/{id} show the run's trace id (and nothing when it has none)."""

from typing import Any

import pytest

from pipeline.models import Run
from tests.page_helpers import signed_in_client

pytestmark = pytest.mark.django_db

TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def make_run(project: Any, **fields: Any) -> Run:
    return Run.objects.create(
        project=project, created_by=project.owner, prompt="A CLI timer", **fields
    )


def test_the_run_page_and_the_api_show_the_trace_id(
    api_client: Any, user: Any, project: Any
) -> None:
    run = make_run(project, traceparent=TRACEPARENT, trace_parent_id="a3ce929d0e0e4736")

    page = signed_in_client(user).get(f"/app/runs/{run.id}").content.decode()

    assert '<code class="secret" id="run-trace-id">4bf92f3577b34da6a3ce929d0e0e4736</code>' in page
    assert api_client.get(f"/runs/{run.id}").json()["trace_id"] == (
        "4bf92f3577b34da6a3ce929d0e0e4736"
    )


def test_a_run_made_while_tracing_was_off_has_no_trace_id(
    api_client: Any, user: Any, project: Any
) -> None:
    run = make_run(project)

    page = signed_in_client(user).get(f"/app/runs/{run.id}").content.decode()

    assert run.traceparent == ""
    assert 'id="run-trace-id"' not in page
    assert api_client.get(f"/runs/{run.id}").json()["trace_id"] is None
