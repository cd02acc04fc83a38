"""Fixtures of the spending tests: a priced model behind a local OpenAI-compatible stub, and
steps with the pipeline's real ledger."""

import json
import math
import time
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest
from django.utils import timezone

from pipeline.models import Run, Step
from pipeline.services.ledger import StepLedger
from providers.offline import answers
from tests.pipeline.conftest import admin_client, no_sandbox  # noqa: F401 - fixtures
from tests.providers.conftest import llm_settings, stub_server  # noqa: F401 - fixtures
from tests.providers.stubs import Received, Reply, StubServer, openai_reply

MESSAGES = [{"role": "user", "content": "Write a CLI timer."}]
# The stub's model: $1000 per million tokens either way, a tenth of a cent a token.
PRICE = Decimal(1000) / 1_000_000


@pytest.fixture
def priced(llm_settings: Any, stub_server: Callable[..., StubServer]) -> StubServer:  # noqa: F811
    """``vendor:priced`` answers "fine" for 10 tokens in and 40 out: $0.05 a call."""
    server = stub_server(lambda _: openai_reply("fine", prompt_tokens=10, completion_tokens=40))
    llm_settings.LLM_PROVIDERS = {
        "vendor": {"kind": "openai", "base_url": server.url + "/v1", "api_key": "k"}
    }
    llm_settings.LLM_PRICES = {"vendor:priced": [1000, 1000]}
    llm_settings.LLM_DEFAULT_PRICE = []
    llm_settings.LLM_CACHE_TTL_SECONDS = 0
    return server


def make_run(project: Any, **fields: Any) -> Run:
    """A run of ``project``'s owner (running, unless ``fields`` say otherwise)."""
    values: dict[str, Any] = {"status": Run.Status.RUNNING, **fields}
    return Run.objects.create(
        project=project,
        created_by=project.owner,
        prompt="A CLI timer",
        heartbeat_at=timezone.now(),
        **values,
    )


def ledger_for(run: Run, key: str = "task:core:coder:1") -> StepLedger:
    """A running step of ``run`` and its ledger, as ``step_run`` makes them."""
    step = Step.objects.create(
        run=run, role="coder", key=key, status=Step.Status.RUNNING, heartbeat_at=timezone.now()
    )
    return StepLedger(
        run_id=run.pk,
        step_id=step.pk,
        step_key=step.key,
        budget_usd=run.budget_usd,
        user_id=run.created_by_id,
        project_id=run.project_id,
        role=step.role,
    )


def _estimate(texts: list[str]) -> int:
    # The router's prompt estimate (providers.pricing.estimate_input_tokens), so what a call
    # costs comes close to the worst case reserved for it.
    return sum(math.ceil(len(text) / 3) + 4 for text in texts)


def offline_over_http(latency_seconds: float) -> Callable[[Received], Reply]:
    """An OpenAI-compatible vendor that answers like the offline model, after a delay, and
    bills the prompt at the router's estimate and the whole output allowance: each call
    costs about its worst case."""

    def respond(received: Received) -> Reply:
        body = received.json
        messages = [
            {"role": message["role"], "content": message["content"]} for message in body["messages"]
        ]
        schema = ((body.get("response_format") or {}).get("json_schema") or {}).get("schema")
        time.sleep(latency_seconds)
        text = answers.answer(role="", messages=messages, schema=schema)
        allowance = int(body.get("max_completion_tokens") or body.get("max_tokens") or 0)
        prompt = _estimate([message["content"] for message in messages])
        return openai_reply(text, prompt_tokens=prompt, completion_tokens=allowance)

    return respond


def request_worst_case_usd(received: Received, price: Decimal) -> Decimal:
    """The most the router may have reserved for this request (prompt and schema estimated
    as it does, and the full output allowance)."""
    body = received.json
    texts = [message["content"] for message in body["messages"]]
    schema = ((body.get("response_format") or {}).get("json_schema") or {}).get("schema")
    if schema is not None:
        texts.append(json.dumps(schema))
    allowance = int(body.get("max_completion_tokens") or body.get("max_tokens") or 0)
    return (_estimate(texts) + allowance) * price
