"""The dashboard's Build on, Follow up, Fork from here and Compare: the same services and
selectors as the API, errors next to their form, another user's runs 404."""

import re
from typing import Any

import pytest

from pipeline.models import Run, Step
from projects.artifacts import artifact_store_tree
from tests.factories import ProjectFactory, UserFactory
from tests.page_helpers import page_post, signed_in_client

pytestmark = pytest.mark.django_db

CORE = "def parse(text):\n    return text.split()\n"


@pytest.fixture(autouse=True)
def _media(tmp_path: Any, settings: Any) -> None:
    settings.MEDIA_ROOT = str(tmp_path / "media")


@pytest.fixture
def browser(user: Any) -> Any:
    return signed_in_client(user)


def completed_run(project: Any, files: dict[str, str | bytes] | None = None, **fields: Any) -> Run:
    run = Run.objects.create(
        project=project,
        created_by=project.owner,
        prompt=fields.pop("prompt", "A parser"),
        status=Run.Status.COMPLETED,
        **fields,
    )
    if files:
        artifact_store_tree(run=run, files=files)
    return run


def design_steps(run: Run) -> None:
    for key, role in (("design:1:architect", "architect"), ("design:1:planner", "planner")):
        Step.objects.create(
            run=run, key=key, role=role, round=1, status="succeeded", tokens_in=50, output={}
        )


def generate(browser: Any, project: Any, **data: Any) -> Any:
    return page_post(
        browser,
        f"/app/projects/{project.id}/generate",
        {"prompt": "Add a report", **data},
        form_page=f"/app/projects/{project.id}",
    )


# --- Build on (the project page's generate form) -----------------------------------------------


def test_the_generate_form_builds_on_the_latest_completed_run_by_default(
    browser: Any, project: Any
) -> None:
    older = completed_run(project)
    latest = completed_run(project)

    html = browser.get(f"/app/projects/{project.id}").content.decode()
    response = generate(browser, project)

    run = Run.objects.latest("id")
    assert re.search(
        rf'<option value="latest" selected>The latest completed run \(run {latest.id}\)</option>',
        html,
    )
    assert f'<option value="{older.id}">Run {older.id}: A parser</option>' in html
    assert (response.status_code, run.base_run_id) == (302, latest.id)


def test_the_generate_form_starts_fresh_or_builds_on_the_run_chosen(
    browser: Any, project: Any
) -> None:
    older = completed_run(project)
    completed_run(project)

    generate(browser, project, base_run="fresh")
    fresh = Run.objects.latest("id")
    generate(browser, project, base_run=str(older.id))
    chosen = Run.objects.latest("id")

    assert (fresh.base_run_id, chosen.base_run_id) == (None, older.id)


def test_the_generate_form_says_next_to_build_on_why_a_base_is_refused(
    browser: Any, project: Any
) -> None:
    completed_run(project)
    theirs = completed_run(ProjectFactory())

    response = generate(browser, project, base_run=str(theirs.id))

    assert response.status_code == 400
    assert re.search(r'id="base_run-error">Base run not found\.</p>', response.content.decode())
    assert Run.objects.count() == 2


def test_a_project_without_a_completed_run_offers_no_base(browser: Any, project: Any) -> None:
    html = browser.get(f"/app/projects/{project.id}").content.decode()

    assert 'name="base_run"' not in html


# --- the run page: where a run came from, what it changed -------------------------------------


def test_a_follow_ups_page_links_its_base_and_shows_its_changes(browser: Any, project: Any) -> None:
    base = completed_run(project, {"pkg/core.py": CORE, "README.md": "# pkg\n"})
    follow_up = completed_run(
        project,
        {"pkg/core.py": CORE + "\n\ndef top():\n    return []\n", "pkg/report.py": "x = 1\n"},
        base_run=base,
    )

    html = browser.get(f"/app/runs/{follow_up.id}").content.decode()

    assert f'Follow-up of <a href="/app/runs/{base.id}">run {base.id}</a>' in html
    assert f"Changes from run {base.id}" in html
    assert "1 added, 1 removed, 1 changed, 0 unchanged." in html
    assert 'aria-label="Added: pkg/report.py"' in html
    assert 'aria-label="Removed: README.md"' in html
    assert "+def top():" in html


def test_a_forks_page_links_its_source_and_counts_the_steps_it_reused(
    browser: Any, project: Any
) -> None:
    source = completed_run(project)
    fork = completed_run(project, forked_from=source, fork_point="coding")
    design_steps(fork)
    Step.objects.filter(run=fork).update(reused=True)

    html = browser.get(f"/app/runs/{fork.id}").content.decode()
    steps = browser.get(f"/app/runs/{fork.id}/steps").content.decode()

    assert (
        f'Forked from <a href="/app/runs/{source.id}">run {source.id}</a> at <code>coding</code>: '
        "2 steps reused, not paid again." in html
    )
    assert f"?runs={source.id},{fork.id}" in html
    assert steps.count('<span class="badge badge-reused">reused</span>') == 2
    assert "(not charged)" in steps


# --- Follow up ------------------------------------------------------------------------------------


def test_follow_up_is_offered_on_a_completed_run_only(browser: Any, project: Any) -> None:
    done = completed_run(project)
    running = Run.objects.create(project=project, prompt="p", status=Run.Status.RUNNING)

    assert ">Follow up</button>" in browser.get(f"/app/runs/{done.id}").content.decode()
    assert ">Follow up</button>" not in browser.get(f"/app/runs/{running.id}").content.decode()
    assert ">Fork from here</button>" in browser.get(f"/app/runs/{running.id}").content.decode()


def test_follow_up_starts_a_run_on_top_of_this_run_through_the_service(
    browser: Any, project: Any
) -> None:
    run = completed_run(project)
    completed_run(project)  # newer: a follow-up of the page's run still builds on the page's run

    response = page_post(
        browser,
        f"/app/runs/{run.id}/follow-up",
        {"prompt": "Add a report", "providers": "offline:offline"},
        form_page=f"/app/runs/{run.id}",
    )

    follow_up = Run.objects.latest("id")
    assert (response.status_code, response["Location"]) == (302, f"/app/runs/{follow_up.id}")
    assert (follow_up.base_run_id, follow_up.prompt, follow_up.options["providers"]) == (
        run.id,
        "Add a report",
        ["offline:offline"],
    )


def test_follow_up_shows_the_services_refusal_next_to_the_prompt(
    browser: Any, project: Any
) -> None:
    run = completed_run(project)

    response = page_post(
        browser, f"/app/runs/{run.id}/follow-up", {"prompt": "  "}, form_page=f"/app/runs/{run.id}"
    )

    assert response.status_code == 400
    assert re.search(
        r'id="follow-up-error">The prompt may not be empty\.</p>', response.content.decode()
    )
    assert Run.objects.count() == 1


def test_follow_up_of_an_unfinished_run_says_why(browser: Any, project: Any) -> None:
    run = Run.objects.create(project=project, prompt="p", status=Run.Status.RUNNING)

    response = page_post(
        browser,
        f"/app/runs/{run.id}/follow-up",
        {"prompt": "More"},
        form_page=f"/app/runs/{run.id}",
    )

    assert response.status_code == 400
    assert "a follow-up builds on a completed run." in response.content.decode()


# --- Fork from here -------------------------------------------------------------------------------


def test_fork_from_a_stage_starts_a_fork_through_the_service(browser: Any, project: Any) -> None:
    source = completed_run(project)

    response = page_post(
        browser,
        f"/app/runs/{source.id}/fork",
        {"from": "design", "providers": "offline:offline"},
        form_page=f"/app/runs/{source.id}",
    )

    fork = Run.objects.latest("id")
    assert (response.status_code, response["Location"]) == (302, f"/app/runs/{fork.id}")
    assert (fork.forked_from_id, fork.fork_point, fork.options["providers"]) == (
        source.id,
        "design",
        ["offline:offline"],
    )


def test_the_step_panel_forks_from_its_step(browser: Any, project: Any) -> None:
    source = completed_run(project)
    design_steps(source)
    step = Step.objects.get(run=source, key="design:1:planner")

    panel = browser.get(f"/app/runs/{source.id}/steps/{step.id}").content.decode()
    response = page_post(
        browser,
        f"/app/runs/{source.id}/fork",
        {"from": step.key, "providers": ""},
        form_page=f"/app/runs/{source.id}",
    )

    fork = Run.objects.latest("id")
    assert '<input type="hidden" name="from" value="design:1:planner">' in panel
    assert ">Fork from here</button>" in panel
    assert response.status_code == 302
    assert list(Step.objects.filter(run=fork).values_list("key", "reused")) == [
        ("design:1:architect", True)
    ]


def test_fork_shows_why_a_point_is_refused_next_to_the_form(browser: Any, project: Any) -> None:
    source = completed_run(project)

    response = page_post(
        browser,
        f"/app/runs/{source.id}/fork",
        {"from": "coding"},
        form_page=f"/app/runs/{source.id}",
    )

    assert response.status_code == 400
    assert re.search(
        r'<div class="alert alert-error" role="alert"><p>Run \d+ has no approved plan to go on '
        r"from: fork it from design\.</p></div>",
        response.content.decode(),
    )
    assert Run.objects.count() == 1


def test_another_users_run_cannot_be_followed_up_or_forked_from_the_page(project: Any) -> None:
    run = completed_run(project)
    stranger = signed_in_client(UserFactory())

    for action, data in (("follow-up", {"prompt": "More"}), ("fork", {"from": "design"})):
        response = page_post(stranger, f"/app/runs/{run.id}/{action}", data, form_page="/account")
        assert response.status_code == 404, action
    assert stranger.get(f"/app/runs/{run.id}/iterate").status_code == 404
    assert stranger.get(f"/app/runs/{run.id}/changes").status_code == 404
    assert Run.objects.count() == 1


# --- Compare --------------------------------------------------------------------------------------


def test_the_project_page_picks_runs_for_compare(browser: Any, project: Any) -> None:
    one, two = completed_run(project), completed_run(project)

    html = browser.get(f"/app/projects/{project.id}").content.decode()

    for run in (one, two):
        assert (
            f'<input type="checkbox" class="pick" name="runs" value="{run.id}" '
            f'id="compare-{run.id}" form="compare-form">' in html
        )
    assert re.search(
        rf'<form id="compare-form" class="actions" method="get" '
        rf'action="/app/projects/{project.id}/compare">\s*<button type="submit" '
        r'class="btn btn-quiet">Compare</button>',
        html,
    )


def test_compare_shows_the_runs_figures_side_by_side_and_their_diff(
    browser: Any, project: Any
) -> None:
    source = completed_run(project, {"pkg/core.py": CORE}, tokens_in=1234)
    design_steps(source)
    fork = completed_run(
        project, {"pkg/core.py": CORE, "pkg/cli.py": "x = 1\n"}, forked_from=source
    )
    Step.objects.create(run=fork, key="design:1:architect", role="architect", reused=True)

    response = browser.get(f"/app/projects/{project.id}/compare?runs={fork.id}&runs={source.id}")

    html = response.content.decode()
    assert response.status_code == 200
    assert re.search(
        rf'<th scope="col"><a href="/app/runs/{source.id}">Run {source.id}</a></th>'
        rf'<th scope="col"><a href="/app/runs/{fork.id}">Run {fork.id}</a></th>',
        html,
    )
    assert '<th scope="row">Steps (reused)</th><td>2 (0)</td><td>1 (1)</td>' in html
    assert f"fork of run {source.id} from" in html
    assert "1,234 / 0" in html
    assert f"Run {source.id} → run {fork.id}" in html
    assert 'aria-label="Added: pkg/cli.py"' in html


def test_compare_of_one_run_says_how_many_to_pick(browser: Any, project: Any) -> None:
    one = completed_run(project)
    completed_run(project)

    response = browser.get(f"/app/projects/{project.id}/compare?runs={one.id}")

    assert response.status_code == 400
    assert "Compare 2 to 3 runs" in response.content.decode()


def test_compare_refuses_a_run_of_another_project(browser: Any, project: Any, user: Any) -> None:
    mine = completed_run(project)
    completed_run(project)
    elsewhere = completed_run(ProjectFactory(owner=user))

    response = browser.get(f"/app/projects/{project.id}/compare?runs={mine.id},{elsewhere.id}")

    assert response.status_code == 404
    assert f"Run {elsewhere.id} not found in this project." in response.content.decode()


def test_another_users_compare_page_is_404(project: Any) -> None:
    completed_run(project)
    stranger = signed_in_client(UserFactory())

    assert stranger.get(f"/app/projects/{project.id}/compare").status_code == 404
