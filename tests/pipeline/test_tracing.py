"""Every run is one trace: request -> run -> stage -> step -> model call / sandbox check.

The SDK's in-memory span exporter stands in for a collector. A run is started through the API
(the Django instrumentation's request span is its parent) and carried out by a real Celery
worker with the offline model and the sandbox, so every span below comes from the code paths
a deployment runs; the test checks the whole tree: parents, trace ids and the GenAI
attributes of model, tokens and cost.
"""

from collections import Counter
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
from django.db import connections
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from rest_framework.test import APIClient

from common.tracing import tracing_configure, tracing_shutdown
from pipeline.models import Run, Step, StepCall
from pipeline.tracing import tracing_install, tracing_uninstall
from tests.conftest import access_token_for
from tests.pipeline.conftest import wait_for_run, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

STAGE_OF_ROLE = {
    "architect": "design",
    "planner": "design",
    "orchestrator": "coding",
    "coder": "coding",
    "tester": "coding",
    "integrator": "integrate",
}


@pytest.fixture
def spans(transactional_db: Any) -> Iterator[InMemorySpanExporter]:
    """Tracing on in this process (the test's requests and the in-process worker)."""
    exporter = InMemorySpanExporter()
    # A process configures tracing before its first connection; here the test database's
    # pool is already open: start a new one (opened through the instrumented connect).
    close_pools()
    assert tracing_configure(exporter=exporter)
    tracing_install()
    try:
        yield exporter
    finally:
        tracing_uninstall()
        tracing_shutdown()
        exporter.clear()
        close_pools()  # its connections carry the psycopg instrumentation's cursors


def close_pools() -> None:
    for connection in connections.all():
        connection.close()
        if getattr(connection, "pool", None) is not None:
            connection.close_pool()


def client_for(user: Any) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {access_token_for(user)}")
    return client


def by_name(finished: list[Any], prefix: str) -> list[Any]:
    return [s for s in finished if s.name.startswith(prefix)]


def test_a_run_is_one_trace_from_the_request_to_each_model_call_and_sandbox_check(
    spans: InMemorySpanExporter, celery_worker: Any, user: Any, project: Any
) -> None:
    client = client_for(user)
    prompt = "A todo list manager with coloured tags"

    response = client.post(f"/projects/{project.id}/generate", {"prompt": prompt}, format="json")
    run = wait_for_run(response.json()["run_id"], timeout=240)
    wait_until(lambda: by_name(list(spans.get_finished_spans()), "invoke_workflow"), timeout=30)
    finished = list(spans.get_finished_spans())

    assert run.status == Run.Status.COMPLETED
    [request] = [
        s for s in finished if s.name == "POST projects/<int:project_id>/generate"
    ]  # the Django instrumentation's server span
    [run_span] = by_name(finished, "invoke_workflow")
    trace_id = run_span.context.trace_id
    assert run_span.parent.span_id == request.context.span_id
    assert request.context.trace_id == trace_id
    assert run_span.attributes["aiflow.run.id"] == run.id
    assert run_span.attributes["gen_ai.operation.name"] == "invoke_workflow"
    assert run_span.attributes["gen_ai.usage.input_tokens"] == run.tokens_in
    assert run_span.attributes["gen_ai.usage.output_tokens"] == run.tokens_out
    assert run_span.attributes["gen_ai.usage.cost.amount"] == float(run.cost_usd)
    assert client.get(f"/runs/{run.id}").json()["trace_id"] == f"{trace_id:032x}"

    stages = {s.attributes["aiflow.stage"]: s for s in by_name(finished, "stage ")}
    assert sorted(stages) == ["coding", "design", "finalize", "integrate"]
    assert {s.parent.span_id for s in stages.values()} == {run_span.context.span_id}
    stage_of_span = {s.context.span_id: name for name, s in stages.items()}

    steps = {s.attributes["aiflow.step.key"]: s for s in by_name(finished, "invoke_agent ")}
    # Every step an agent worked on (the merged tree is a row integration writes itself).
    stored = dict(
        Step.objects.filter(run=run).exclude(key="integrate:tree").values_list("key", "role")
    )
    assert sorted(steps) == sorted(stored)
    for key, step_span in steps.items():
        stage = "integrate" if key.startswith("integrate:") else STAGE_OF_ROLE[stored[key]]
        assert stage_of_span[step_span.parent.span_id] == stage, key
        assert step_span.attributes["gen_ai.agent.name"] == stored[key]
    step_of_span = {s.context.span_id: key for key, s in steps.items()}

    calls = by_name(finished, "chat ")
    paid = StepCall.objects.filter(step__run=run)
    assert len(calls) == paid.count()
    assert Counter(step_of_span[c.parent.span_id] for c in calls) == Counter(
        paid.values_list("step__key", flat=True)
    )
    for call in calls:
        assert call.kind.name == "CLIENT"
        assert call.attributes["gen_ai.operation.name"] == "chat"
        assert call.attributes["gen_ai.provider.name"] == "offline"
        assert call.attributes["gen_ai.request.model"] == "offline"
        assert call.attributes["gen_ai.usage.cost.currency"] == "USD"
    assert sum(c.attributes["gen_ai.usage.input_tokens"] for c in calls) == run.tokens_in
    assert sum(c.attributes["gen_ai.usage.output_tokens"] for c in calls) == run.tokens_out
    assert Decimal(str(sum(c.attributes["gen_ai.usage.cost.amount"] for c in calls))) == (
        run.cost_usd.normalize()
    )

    checks = by_name(finished, "sandbox checks")
    assert checks, "the testers ran the sandbox"
    assert {stored[step_of_span[c.parent.span_id]] for c in checks} == {"tester"}
    assert all(c.attributes["aiflow.checks.passed"] for c in checks)

    ours = [request, run_span, *stages.values(), *steps.values(), *calls, *checks]
    assert {s.context.trace_id for s in ours} == {trace_id}
    in_trace = [s for s in finished if s.context.trace_id == trace_id]
    assert any(s.attributes.get("db.system") == "postgresql" for s in in_trace)
    assert any(s.attributes.get("db.system") == "redis" for s in in_trace)
    assert any(s.name.startswith("run/pipeline.") for s in in_trace)  # Celery's task spans
    # No span carries the prompt, a model's answer or a file.
    texts = [str(value) for s in finished for value in (s.attributes or {}).values()]
    answers = list(paid.values_list("text", flat=True))
    assert not [t for t in texts if prompt in t or "def " in t or t in answers]


def test_a_run_approved_and_resumed_by_later_requests_stays_in_its_trace(
    spans: InMemorySpanExporter,
    celery_worker: Any,
    user: Any,
    project: Any,
    script: Any,
    no_sandbox: None,
) -> None:
    script([{"role": "coder", "action": "error", "task": "cli", "times": 1}])
    client = client_for(user)
    run_id = client.post(
        f"/projects/{project.id}/generate",
        {"prompt": "A habit tracker", "options": {"require_approval": True}},
        format="json",
    ).json()["run_id"]
    wait_for_run(run_id, lambda run: run.status == Run.Status.AWAITING_APPROVAL)
    trace_id = int(client.get(f"/runs/{run_id}").json()["trace_id"], 16)

    assert client.post(f"/runs/{run_id}/approve").status_code == 202
    assert wait_for_run(run_id).status == Run.Status.FAILED
    assert client.post(f"/runs/{run_id}/resume").status_code == 202
    assert wait_for_run(run_id).status == Run.Status.COMPLETED
    wait_until(lambda: len(by_name(list(spans.get_finished_spans()), "invoke_workflow")) == 2)
    finished = list(spans.get_finished_spans())

    approve = next(s for s in finished if s.name == "POST runs/<int:run_id>/approve")
    resume = next(s for s in finished if s.name == "POST runs/<int:run_id>/resume")
    assert trace_id not in (approve.context.trace_id, resume.context.trace_id)
    steps = by_name(finished, "invoke_agent ")
    assert {s.context.trace_id for s in steps} == {trace_id}
    # Celery's spans too: the tasks the approval and the resume queued were sent in the run's
    # trace, not in the trace of the request that queued them.
    celery = [s for s in finished if s.name.startswith(("apply_async/pipeline.", "run/pipeline."))]
    assert {s.context.trace_id for s in celery} == {trace_id}
    coders = [s for s in steps if s.attributes["aiflow.step.key"] == "task:cli:coder:1"]
    assert [s.status.status_code.name for s in coders] == ["ERROR", "UNSET"]
    [coding] = {s.parent.span_id for s in coders}
    # The run's span, exported when it failed and again when it completed, under one id.
    first, second = by_name(finished, "invoke_workflow")
    assert first.context.span_id == second.context.span_id
    assert (first.attributes["aiflow.run.status"], second.attributes["aiflow.run.status"]) == (
        "failed",
        "completed",
    )
    assert first.status.status_code.name == "ERROR"
    codings = [s for s in by_name(finished, "stage coding")]
    assert {s.context.span_id for s in codings} == {coding}
