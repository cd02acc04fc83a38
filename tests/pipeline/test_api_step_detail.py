"""``GET /runs/{id}/steps/{step_id}``: one step with what it produced, owner only, redacted."""

from typing import Any

import pytest
from django.test import override_settings

from pipeline.models import Run, Step
from tests.factories import ProjectFactory

pytestmark = pytest.mark.django_db

PROVIDER_KEY = "live-provider-key-0123456789abcdef"


@pytest.fixture
def run(project: Any) -> Run:
    return Run.objects.create(project=project, created_by=project.owner, prompt="A CLI timer")


@pytest.fixture
def coder_step(run: Run) -> Step:
    return Step.objects.create(
        run=run,
        role="coder",
        key="task:core:coder:1",
        status="succeeded",
        provider="offline",
        model="offline",
        tokens_in=120,
        tokens_out=80,
        input={"task": "core"},
        output={
            "files": {"timer/core.py": "def tick() -> int:\n    return 1\n"},
            "notes": "Plain and simple.",
        },
    )


def test_a_step_answers_with_its_output_and_usage(api_client: Any, run: Run, coder_step: Step):
    response = api_client.get(f"/runs/{run.id}/steps/{coder_step.id}")

    body = response.json()
    assert response.status_code == 200
    assert (body["id"], body["key"], body["role"], body["status"]) == (
        coder_step.id,
        "task:core:coder:1",
        "coder",
        "succeeded",
    )
    assert (body["tokens_in"], body["tokens_out"]) == (120, 80)
    assert body["input"] == {"task": "core"}
    assert body["output"] == {
        "files": {"timer/core.py": "def tick() -> int:\n    return 1\n"},
        "notes": "Plain and simple.",
    }


def test_another_users_step_is_404(other_client: Any, run: Run, coder_step: Step):
    assert other_client.get(f"/runs/{run.id}/steps/{coder_step.id}").status_code == 404


def test_a_step_of_another_run_is_404_under_this_run(api_client: Any, user: Any, coder_step: Step):
    mine = Run.objects.create(project=ProjectFactory(owner=user), created_by=user, prompt="x")
    assert api_client.get(f"/runs/{mine.id}/steps/{coder_step.id}").status_code == 404


@override_settings(
    LLM_PROVIDERS={"openrouter": {"kind": "openai", "api_key": PROVIDER_KEY, "base_url": "x"}}
)
def test_secrets_in_a_steps_output_input_and_error_are_redacted(api_client: Any, run: Run):
    step = Step.objects.create(
        run=run,
        role="coder",
        key="task:cli:coder:1",
        status="failed",
        input={"task": "cli", "api_key": "typed-into-the-prompt-by-someone"},
        output={
            "files": {
                "app/secrets.py": f'OPENROUTER = "{PROVIDER_KEY}"\nAWS = "AKIAABCDEFGHIJKLMNOP"\n',
                "app/cli.py": "print('hello')\n",
            },
            "notes": "Authorization: Bearer abcdefghijklmnopqrstuvwxyz012345",
        },
        error=f"401 from the provider for key {PROVIDER_KEY}",
    )

    body = api_client.get(f"/runs/{run.id}/steps/{step.id}").json()

    assert body["output"]["files"] == {
        "app/secrets.py": 'OPENROUTER = "[redacted]"\nAWS = "[redacted]"\n',
        "app/cli.py": "print('hello')\n",
    }
    assert body["output"]["notes"] == "Authorization: [redacted]"
    assert body["input"] == {"task": "cli", "api_key": "[redacted]"}
    assert body["error"] == "401 from the provider for key [redacted]"
    assert PROVIDER_KEY not in str(body)


def test_the_step_detail_is_in_the_openapi_schema(api_client: Any):
    schema = api_client.get("/api/schema/", HTTP_ACCEPT="application/json").json()

    operation = schema["paths"]["/runs/{run_id}/steps/{step_id}"]["get"]
    reference = operation["responses"]["200"]["content"]["application/json"]["schema"]["$ref"]
    component = schema["components"]["schemas"][reference.rsplit("/", 1)[-1]]
    assert {"input", "output", "tokens_in", "cost_usd", "latency_ms"} <= set(
        component["properties"]
    )
