"""How good the cost forecast is over the shipped evaluation suite: printed, never asserted.

``manage.py evaluate basic`` runs the eight cases on the real stack (a real Celery worker)
through a priced local model: a stub OpenAI-compatible server that answers like the offline
test double and bills its tokens (about four characters a token) at $3 / $15 per million,
so the runs have real, varying costs. Before each run starts the evaluation asks for its
forecast as the generate form does; the command prints the mean absolute percentage error
and how often the real cost fell inside p10-p90. This test shows the figures come out; what
they are is printed for the README, not asserted (they depend on the test double).
"""

import io
import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command

from providers.offline import answers
from tests.providers.conftest import stub_server  # noqa: F401 - fixture
from tests.providers.stubs import Received, Reply, StubServer, openai_reply

pytestmark = [pytest.mark.slow, pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def _tokens(text: str) -> int:
    return math.ceil(len(text) / 4)


def offline_billed(received: Received) -> Reply:
    """An OpenAI-compatible answer made by the offline model, billed by its length."""
    body = received.json
    messages = [{"role": m["role"], "content": m["content"]} for m in body["messages"]]
    schema = ((body.get("response_format") or {}).get("json_schema") or {}).get("schema")
    text = answers.answer(role="", messages=messages, schema=schema)
    prompt = sum(_tokens(m["content"]) for m in messages)
    return openai_reply(text, prompt_tokens=prompt, completion_tokens=_tokens(text))


@pytest.fixture
def priced_model(
    settings: Any,
    stub_server: Callable[..., StubServer],  # noqa: F811
) -> StubServer:
    server = stub_server(offline_billed)
    settings.LLM_PROVIDERS = {
        "vendor": {"kind": "openai", "base_url": server.url + "/v1", "api_key": "k"}
    }
    settings.LLM_ALLOWED_MODELS = ["vendor:priced"]
    settings.LLM_PRICES = {"vendor:priced": [3, 15]}
    settings.LLM_CACHE_TTL_SECONDS = 0
    settings.LLM_USER_DAILY_BUDGET_USD = None
    settings.SANDBOX_TESTS_ENABLED = False
    settings.MEDIA_ROOT = str(Path(settings.MEDIA_ROOT) / "forecast-evaluation")
    return server


def test_the_forecasts_error_over_the_evaluation_suite_is_printed(
    celery_worker: Any, user: Any, tmp_path: Path, priced_model: StubServer
) -> None:
    out = io.StringIO()
    call_command(
        "evaluate",
        "basic",
        "--chains",
        "vendor:priced",
        "--user",
        user.email,
        "--output",
        str(tmp_path),
        "--poll",
        "0.2",
        "--timeout",
        "600",
        stdout=out,
    )

    written = json.loads(sorted(tmp_path.glob("*.json"))[-1].read_text())
    chain = written["chains"][0]
    line = next(text for text in out.getvalue().splitlines() if text.startswith("forecast over"))
    print(f"\n{line}")
    for case in chain["cases"]:
        forecast = case["forecast"]
        print(
            f"  {case['case']}: {forecast['basis']}: cost p10/p50/p90 "
            + "/".join(forecast["cost_usd"][p] for p in ("p10", "p50", "p90"))
            + f" real {case['cost_usd']}; tokens p50 {forecast['tokens']['p50']} real "
            f"{case['tokens_in'] + case['tokens_out']}"
        )
    assert chain["forecast"]["runs"] == chain["figures"]["completed"] > 0
    assert set(chain["forecast"]) == {"runs", "basis", "all", "from_history"}
    assert chain["cases"][0]["forecast"]["basis"] == "default"
    assert all(case["forecast"] is not None for case in chain["cases"])
    assert priced_model.requests
