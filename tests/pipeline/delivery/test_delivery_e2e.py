"""Delivery on the real stack: a real Celery worker, the offline model (a labelled test
double), real git and a local forge. A run asked for with ``deliver`` is pushed and its pull
request opened when it completes; a review comment on that pull request starts one follow-up
run, which pushes one new commit to the same branch and updates the same pull request."""

import hashlib
import hmac
import json
from typing import Any

import pytest

from pipeline.delivery.selectors import run_tree_bytes
from pipeline.models import Run, RunDelivery
from tests.forge_stub import Forge
from tests.git_server import git, make_repository
from tests.pipeline.conftest import wait_for_run, wait_until
from tests.pipeline.delivery.conftest import HOOK_SECRET, branch_log
from tests.pipeline.delivery.helpers import make_import_run
from tests.pipeline.offline_trees import build

pytestmark = [pytest.mark.slow, pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

PROMPT = "A shopping list manager"


@pytest.fixture
def forge(tmp_path: Any, local_git: None) -> Any:
    """The forge's main holds the tree the offline model builds for ``PROMPT``."""
    base_tree, _ = build(PROMPT)
    with Forge("github", tmp_path / "srv", token="ghp_Dl1veryT0kenXy9") as stub:
        work = tmp_path / "work"
        stub.base = make_repository(work, dict[str, bytes | str](base_tree))
        stub.tree = base_tree
        git("push", "-q", str(stub.bare), "main", cwd=work)
        yield stub


def wait_delivered(run_id: int, *, after_attempt: int = 0) -> RunDelivery:
    def done() -> RunDelivery | None:
        delivery = RunDelivery.objects.filter(run_id=run_id).first()
        if delivery is None or delivery.state not in ("delivered", "failed"):
            return None
        return delivery if delivery.attempt > after_attempt else None

    return wait_until(done, timeout=120)


def review_comment(client: Any, project: Any, number: int, text: str, delivery: str) -> Any:
    body = json.dumps(
        {
            "action": "created",
            "issue": {"number": number, "pull_request": {"url": "http://forge/pulls"}},
            "comment": {"id": 5, "body": text, "user": {"login": "ada"}},
            "repository": {"full_name": "acme/app"},
        }
    ).encode()
    signature = "sha256=" + hmac.new(HOOK_SECRET.encode(), body, hashlib.sha256).hexdigest()
    return client.generic(
        "POST",
        f"/hooks/github/{project.pk}",
        body,
        content_type="application/json",
        HTTP_X_GITHUB_EVENT="issue_comment",
        HTTP_X_GITHUB_DELIVERY=delivery,
        HTTP_X_HUB_SIGNATURE_256=signature,
    )


def test_import_run_pull_request_then_a_review_comment_adds_one_commit(
    celery_worker: Any,
    no_sandbox: None,
    api_client: Any,
    anon_client: Any,
    project: Any,
    forge: Any,
    connection: Any,
) -> None:
    imported = make_import_run(
        project, forge.tree, url=forge.clone_url, ref="main", commit=forge.base
    )
    response = api_client.post(
        f"/projects/{project.pk}/generate",
        {"prompt": "Add a report", "base_run": imported.pk, "deliver": {}},
        format="json",
    )
    assert response.status_code == 202, response.json()
    run = wait_for_run(response.json()["run_id"], timeout=300)
    assert (run.status, run.error) == (Run.Status.COMPLETED, "")

    first = wait_delivered(run.pk)

    branch = f"aiflow/run-{run.pk}"
    assert (first.state, first.branch, first.error) == ("delivered", branch, "")
    assert branch_log(forge.bare, branch) == [first.commit, forge.base]
    before, after = run_tree_bytes(run=imported), run_tree_bytes(run=run)
    changed = sorted(path for path, data in after.items() if before.get(path) != data)
    assert changed  # the offline model changed the imported code
    # The branch holds exactly the run's change to the imported tree, nothing more.
    assert git("diff", "--name-only", forge.base, first.commit, cwd=forge.bare).split() == changed
    assert [(p["number"], p["head"], p["title"]) for p in forge.pulls] == [
        (1, branch, "Add a report")
    ]
    detail = api_client.get(f"/runs/{run.pk}").json()["delivery"]
    assert (detail["state"], detail["commit"], detail["pull_request_url"]) == (
        "delivered",
        first.commit,
        f"{forge.server.url}/acme/app/pull/1",
    )

    hook = review_comment(anon_client, project, 1, "Add a unique items helper", "gh-d-1")
    replay = review_comment(anon_client, project, 1, "Add a unique items helper", "gh-d-1")

    assert (hook.status_code, replay.status_code) == (202, 200)
    follow_up = wait_for_run(hook.json()["run_id"], timeout=300)
    assert (follow_up.status, follow_up.base_run_id) == (Run.Status.COMPLETED, run.pk)
    second = wait_delivered(follow_up.pk)
    assert (second.state, second.branch) == ("delivered", branch), second.error
    assert branch_log(forge.bare, branch) == [second.commit, first.commit, forge.base]
    assert git("log", "-1", "--format=%s", second.commit, cwd=forge.bare) == (
        "Add a unique items helper"
    )
    assert [(p["number"], p["title"]) for p in forge.pulls] == [(1, "Add a report")]
    assert "> Add a unique items helper" in forge.pulls[0]["body"]
    assert "This update answers a review comment by @ada." in forge.pulls[0]["body"]
    assert Run.objects.filter(base_run=run).count() == 1
