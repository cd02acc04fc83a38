"""The run pages: a project's runs and generate form, the run page, its fragments and actions."""

import json
import re
from typing import Any

import pytest

from pipeline.models import Event, PlanTask, Run, Step
from pipeline.services import run_start
from tests.factories import UserFactory
from tests.page_helpers import page_post, signed_in_client

pytestmark = pytest.mark.django_db


@pytest.fixture
def browser(user: Any) -> Any:
    return signed_in_client(user)


@pytest.fixture
def run(project: Any) -> Run:
    return run_start(project=project, user=project.owner, prompt="A CLI timer", options=None)


def _page_data(html: str) -> dict[str, Any]:
    match = re.search(r'<script id="run-data" type="application/json">(.*?)</script>', html, re.S)
    assert match is not None
    return json.loads(match.group(1))


def test_generate_starts_a_run_through_the_service_and_opens_its_page(browser, project):
    response = page_post(
        browser,
        f"/app/projects/{project.id}/generate",
        {
            "prompt": "A todo list with tags",
            "providers": "offline:offline",
            "budget_usd": "0.75",
            "max_design_rounds": "2",
            "max_fix_attempts": "1",
            "require_approval": "on",
        },
        form_page=f"/app/projects/{project.id}",
    )
    run = Run.objects.get(project=project)
    assert response.status_code == 302
    assert response["Location"] == f"/app/runs/{run.id}"
    assert run.options == {
        "providers": ["offline:offline"],
        "require_approval": True,
        "max_design_rounds": 2,
        "max_fix_attempts": 1,
        "budget_usd": "0.75",
    }
    assert Event.objects.get(run=run, seq=1).type == "run.started"


def test_generate_shows_the_services_refusal_next_to_its_field(browser, project, settings):
    settings.PIPELINE_OPTION_MAX_ROUNDS = 4
    response = page_post(
        browser,
        f"/app/projects/{project.id}/generate",
        {"prompt": "A timer", "max_design_rounds": "9"},
        form_page=f"/app/projects/{project.id}",
    )
    assert response.status_code == 400
    assert re.search(
        r'id="max_design_rounds-error">max_design_rounds may be at most 4',
        response.content.decode(),
    )
    assert not Run.objects.exists()


def test_generate_refuses_an_unconfigured_model(browser, project):
    response = page_post(
        browser,
        f"/app/projects/{project.id}/generate",
        {"prompt": "A timer", "providers": "openrouter:gpt-9"},
        form_page=f"/app/projects/{project.id}",
    )
    assert response.status_code == 400
    assert "is not configured" in response.content.decode()
    assert not Run.objects.exists()


def test_the_project_page_lists_runs_with_status_tokens_and_cost(browser, project, run):
    Run.objects.filter(id=run.id).update(
        status="completed", tokens_in=1200, tokens_out=300, cost_usd="0.0123"
    )
    html = browser.get(f"/app/projects/{project.id}").content.decode()
    assert f'href="/app/runs/{run.id}"' in html
    assert "Completed" in html
    assert "1,500" in html
    assert "$0.01" in html
    for name in ("Prompt", "Budget (USD)"):
        assert f">{name}</label>" in html
    assert ">Generate</button>" in html


def test_another_users_project_and_run_pages_are_404(project, run):
    stranger = signed_in_client(UserFactory())
    for url in (
        f"/app/projects/{project.id}",
        f"/app/runs/{run.id}",
        f"/app/runs/{run.id}/state",
        f"/app/runs/{run.id}/summary",
        f"/app/runs/{run.id}/steps",
        f"/app/runs/{run.id}/rounds",
    ):
        assert stranger.get(url).status_code == 404, url


def test_another_users_run_cannot_be_cancelled_from_the_page(run):
    stranger = signed_in_client(UserFactory())
    response = page_post(stranger, f"/app/runs/{run.id}/cancel", {}, form_page="/account")
    run.refresh_from_db()
    assert response.status_code == 404
    assert run.status == "queued"


def test_pages_send_a_signed_out_browser_to_sign_in(client, project, run):
    for url in (f"/app/projects/{project.id}", f"/app/runs/{run.id}", "/account"):
        response = client.get(url)
        assert (response.status_code, response["Location"]) == (302, "/"), url


def test_the_run_page_starts_the_stream_after_the_events_it_rendered(browser, run):
    html = browser.get(f"/app/runs/{run.id}").content.decode()
    data = _page_data(html)
    assert data["last_seq"] == 1
    assert [e["seq"] for e in data["events"]] == [1]
    assert f'sse-connect="/runs/{run.id}/events?last_event_id=1"' in html


def test_a_finished_run_page_opens_no_stream(browser, run):
    from pipeline.services import run_cancel

    run_cancel(run=run)
    html = browser.get(f"/app/runs/{run.id}").content.decode()
    assert _page_data(html)["final"] is True
    assert "sse-connect" not in html
    assert ">Resume</button>" in html
    assert ">Cancel run</button>" not in html


def test_cancel_and_approve_buttons_follow_the_status(browser, run):
    html = browser.get(f"/app/runs/{run.id}/summary").content.decode()
    assert ">Cancel run</button>" in html
    assert ">Approve</button>" not in html
    Run.objects.filter(id=run.id).update(status="awaiting_approval")
    html = browser.get(f"/app/runs/{run.id}/summary").content.decode()
    assert ">Approve</button>" in html


def test_cancel_from_the_page_cancels_through_the_service(browser, run):
    response = page_post(browser, f"/app/runs/{run.id}/cancel", {}, form_page=f"/app/runs/{run.id}")
    run.refresh_from_db()
    assert response.status_code == 302
    assert run.status == "cancelled"
    assert Event.objects.filter(run=run).order_by("-seq").first().type == "run.cancelled"


def test_approve_of_a_run_not_at_the_gate_says_why(browser, run):
    page_post(browser, f"/app/runs/{run.id}/approve", {}, form_page=f"/app/runs/{run.id}")
    html = browser.get(f"/app/runs/{run.id}").content.decode()
    assert "The run is not waiting for approval." in html


def test_a_stopped_run_says_why_in_plain_words(browser, run):
    Run.objects.filter(id=run.id).update(
        status="failed", error_code="budget", error="The run spent its budget of $0.50."
    )
    html = browser.get(f"/app/runs/{run.id}/summary").content.decode()
    assert "The run spent its budget." in html
    assert "The run spent its budget of $0.50." in html


def test_the_budget_bar_shows_what_is_spent(browser, run):
    Run.objects.filter(id=run.id).update(budget_usd="2.00", cost_usd="0.50")
    html = browser.get(f"/app/runs/{run.id}/summary").content.decode()
    assert "Budget: $0.50 of $2.00 spent" in html
    assert re.search(r'<meter id="budget-meter"[^>]* value="25.0"', html)


def _task_with_tester(run: Run, key: str, mode: str) -> Step:
    task = PlanTask.objects.create(run=run, key=key, title=f"Task {key}", status="succeeded")
    Step.objects.create(
        run=run, role="coder", key=f"task:{key}:coder:1", plan_task=task, status="succeeded",
        output={"files": {f"{key}.py": "x = 1\n"}},
    )  # fmt: skip
    return Step.objects.create(
        run=run, role="tester", key=f"task:{key}:tester:1", plan_task=task, status="succeeded",
        output={"passed": True, "mode": mode, "summary": f"{mode}: fine", "failures": []},
    )  # fmt: skip


def test_the_run_page_marks_every_task_the_tester_reviewed_statically(browser, run):
    _task_with_tester(run, "core", "static review")
    _task_with_tester(run, "cli", "sandbox")

    state = browser.get(f"/app/runs/{run.id}/state").json()

    by_key = {task["key"]: task for task in state["tasks"]}
    assert by_key["core"]["static_review"] is True
    assert by_key["cli"]["static_review"] is False
    assert (by_key["core"]["coder_attempts"], by_key["core"]["tester_attempts"]) == (1, 1)


def test_the_step_panel_of_a_static_review_says_so(browser, run):
    step = _task_with_tester(run, "core", "static review")
    html = browser.get(f"/app/runs/{run.id}/steps/{step.id}").content.decode()
    assert "static review (the sandbox did not run the tests" in html
    sandboxed = _task_with_tester(run, "cli", "sandbox")
    html = browser.get(f"/app/runs/{run.id}/steps/{sandboxed.id}").content.decode()
    assert "tests run in the sandbox" in html
    assert "static review" not in html


def test_the_step_panel_shows_the_files_a_coder_wrote_highlighted(browser, run):
    step = Step.objects.create(
        run=run, role="coder", key="task:core:coder:1", status="succeeded", provider="offline",
        model="offline", tokens_in=10, tokens_out=5, latency_ms=1500,
        output={"files": {"timer/core.py": "def tick() -> int:\n    return 1\n"}},
    )  # fmt: skip
    html = browser.get(f"/app/runs/{run.id}/steps/{step.id}").content.decode()
    assert "<code>timer/core.py</code>" in html
    assert '<span class="k">def</span>' in html
    assert "offline · offline" in html
    assert "1.5 s in the model" in html


def test_the_step_panel_redacts_secrets(browser, run, settings):
    settings.LLM_PROVIDERS = {"x": {"kind": "openai", "api_key": "provider-secret-0123456789"}}
    step = Step.objects.create(
        run=run, role="coder", key="task:core:coder:1", status="succeeded",
        output={"files": {"a.py": "KEY = 'provider-secret-0123456789'\n"}, "notes": ""},
    )  # fmt: skip
    html = browser.get(f"/app/runs/{run.id}/steps/{step.id}").content.decode()
    assert "provider-secret-0123456789" not in html
    assert "[redacted]" in html


def test_design_rounds_show_objections_and_resolutions(browser, run):
    Step.objects.create(
        run=run, role="architect", key="design:1:architect", round=1, status="succeeded",
        output={"summary": "First idea.", "resolutions": []},
    )  # fmt: skip
    Step.objects.create(
        run=run, role="planner", key="design:1:planner", round=1, status="succeeded",
        output={"approved": False, "objections": ["Storage is missing."]},
    )  # fmt: skip
    Step.objects.create(
        run=run, role="architect", key="design:2:architect", round=2, status="succeeded",
        output={
            "summary": "Second idea.",
            "resolutions": [
                {"objection": "Storage is missing.", "resolution": "Added JSON storage."}
            ],
        },
    )  # fmt: skip
    html = browser.get(f"/app/runs/{run.id}/rounds").content.decode()
    assert "Storage is missing." in html
    assert "Added JSON storage." in html
    assert "Second idea." in html
