"""The cost forecast (POST /projects/{id}/estimate): its basis, its figures, its rules."""

from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.utils import timezone

from pipeline.forecast import DEFAULT_SECONDS, DEFAULT_TOKENS, percentile
from pipeline.models import Run, Step
from tests.factories import ProjectFactory, UserFactory

pytestmark = pytest.mark.django_db(transaction=True)

PROMPT = "A CLI timer"
CHAIN = ["vendor:priced"]


@pytest.fixture(autouse=True)
def priced(settings: Any) -> None:
    """``vendor:priced`` costs $1 per million tokens in and $2 per million out."""
    settings.LLM_PROVIDERS = {
        "vendor": {"kind": "openai", "base_url": "http://127.0.0.1:9/v1", "api_key": "k"}
    }
    settings.LLM_CHAINS = {"default": ["offline:offline"]}
    settings.LLM_ALLOWED_MODELS = CHAIN
    settings.LLM_PRICES = {"vendor:priced": [1, 2]}
    settings.LLM_RUN_BUDGET_MAX_USD = None
    settings.PIPELINE_DEFAULT_BUDGET_USD = ""


def past_run(
    user: Any,
    *,
    coder: tuple[int, int],
    seconds: float = 100.0,
    prompt: str = PROMPT,
    **fields: Any,
) -> Run:
    """A completed run of ``user`` whose one coder call used ``coder`` tokens (in, out)."""
    finished = timezone.now()
    run = Run.objects.create(
        project=ProjectFactory(owner=user),
        created_by=user,
        prompt=prompt,
        **{"status": Run.Status.COMPLETED, "finished_at": finished, **fields},
    )
    Run.objects.filter(id=run.id).update(created_at=finished - timedelta(seconds=seconds))
    Step.objects.create(
        run=run,
        role="coder",
        key="task:core:coder:1",
        status=Step.Status.SUCCEEDED,
        tokens_in=coder[0],
        tokens_out=coder[1],
        llm_calls=1,
    )
    return run


def estimate(client: Any, project: Any, **body: Any) -> Any:
    payload = {"prompt": PROMPT, "options": {"providers": CHAIN}, **body}
    return client.post(f"/projects/{project.id}/estimate", payload, format="json")


def test_the_basis_moves_from_default_to_everyones_to_this_users_as_history_appears(
    api_client: Any, project: Any, user: Any
) -> None:
    someone = UserFactory()
    bases = [estimate(api_client, project).json()["basis"]]
    for tokens in ((1_000_000, 0), (2_000_000, 0), (3_000_000, 0)):
        past_run(someone, coder=tokens)
    everyone = estimate(api_client, project).json()
    for tokens in ((0, 1_000_000), (0, 2_000_000)):
        past_run(user, coder=tokens)
    still_everyone = estimate(api_client, project).json()["basis"]
    past_run(user, coder=(0, 3_000_000))
    own = estimate(api_client, project).json()

    assert bases + [everyone["basis"], still_everyone, own["basis"]] == [
        "default",
        "everyone",
        "everyone",
        "user",
    ]
    # Someone else's three runs: 1, 2 and 3 million input tokens at $1 per million.
    assert everyone["cost_usd"] == {"p10": "1.200000", "p50": "2.000000", "p90": "2.800000"}
    # The user's own three runs: 1, 2 and 3 million output tokens at $2 per million.
    assert own["cost_usd"] == {"p10": "2.400000", "p50": "4.000000", "p90": "5.600000"}
    assert (own["history_runs"], own["tokens"]["p50"], own["prices"]["coder"]) == (
        3,
        2_000_000,
        "vendor:priced",
    )


def test_with_no_history_the_stated_default_is_priced_at_the_chain(
    api_client: Any, project: Any
) -> None:
    body = estimate(api_client, project, prompt="").json()

    tokens_in = sum(t[0] for t in DEFAULT_TOKENS.values())
    tokens_out = sum(t[1] for t in DEFAULT_TOKENS.values())
    one = (Decimal(tokens_in) * 1 + Decimal(tokens_out) * 2) / 1_000_000
    assert body["basis"] == "default"
    assert body["cost_usd"]["p50"] == f"{one:.6f}"
    assert body["cost_usd"]["p90"] == f"{one * Decimal('2.5'):.6f}"
    assert body["seconds"] == dict(zip(("p10", "p50", "p90"), DEFAULT_SECONDS, strict=True))


def test_a_longer_prompt_costs_its_extra_tokens_in_every_call(
    api_client: Any, project: Any, user: Any
) -> None:
    for _ in range(3):
        past_run(user, coder=(1_000_000, 0))

    longer = estimate(api_client, project, prompt=PROMPT + "x" * 4000).json()

    # 4000 more characters are 1000 more tokens in the one call of each run.
    assert longer["tokens"]["p50"] == 1_001_000
    assert longer["cost_usd"]["p50"] == "1.001000"


def test_the_forecast_never_passes_the_runs_budget(
    api_client: Any, project: Any, user: Any
) -> None:
    for tokens in ((1_000_000, 0), (2_000_000, 0), (3_000_000, 0)):
        past_run(user, coder=tokens)

    body = estimate(api_client, project, options={"providers": CHAIN, "budget_usd": "2.5"}).json()

    assert body["cost_usd"] == {"p10": "1.200000", "p50": "2.000000", "p90": "2.500000"}
    assert "capped at the run's budget of $2.5" in body["detail"]


def test_time_waiting_for_approval_or_paused_is_not_forecast(
    api_client: Any, project: Any, user: Any
) -> None:
    approved = timezone.now() - timedelta(seconds=50)
    for _ in range(3):
        past_run(
            user,
            coder=(1, 1),
            seconds=500.0,
            paused_seconds=100.0,
            approved_at=approved,
            stages={"design": {"completed_at": (approved - timedelta(seconds=300)).isoformat()}},
        )

    body = estimate(api_client, project).json()

    assert body["seconds"] == {"p10": 100.0, "p50": 100.0, "p90": 100.0}


def test_forks_and_runs_that_did_not_complete_are_no_history(
    api_client: Any, project: Any, user: Any
) -> None:
    source = past_run(user, coder=(1, 1))
    past_run(user, coder=(1, 1), forked_from=source, fork_point="coding")
    past_run(user, coder=(1, 1), status=Run.Status.FAILED)

    assert estimate(api_client, project).json()["basis"] == "default"


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"options": {"providers": ["nowhere:model"]}}, 400, "invalid_options"),
        ({"options": {"max_fix_attempts": 0}}, 400, "invalid_options"),
        ({"base_run": 999_999}, 404, "not_found"),
        ({"prompt": "x" * 20_001}, 400, "invalid_prompt"),
    ],
)
def test_an_estimate_of_a_run_that_could_not_start_is_refused_alike(
    api_client: Any, project: Any, body: dict, status: int, code: str
) -> None:
    response = estimate(api_client, project, **body)

    assert (response.status_code, response.json()["code"]) == (status, code)


def test_another_users_project_is_404_to_estimate(other_client: Any, project: Any) -> None:
    assert estimate(other_client, project).status_code == 404


def test_percentiles_interpolate_between_ranks() -> None:
    assert [percentile([1.0, 2.0, 3.0, 4.0], p) for p in (0, 10, 50, 90, 100)] == pytest.approx(
        [1.0, 1.3, 2.5, 3.7, 4.0]
    )
