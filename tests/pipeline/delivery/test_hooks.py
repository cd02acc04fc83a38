"""``POST /hooks/{kind}/{project_id}``: the signature verified before anything is read; a
review comment on one of our pull requests starts exactly one follow-up run on its branch;
a replay starts none; someone else's pull request is ignored; a rate per project."""

import hashlib
import hmac
import json
from typing import Any

import pytest
from django.utils import timezone

from pipeline.models import ReviewHook, Run, RunDelivery
from repositories.services import forge_connection_put
from tests.pipeline.delivery.helpers import make_completed_run

SECRET = "whsec-review-5b2c"
COMMENT = "Please also greet by name."


@pytest.fixture
def delivered(project: Any) -> Run:
    """A run delivered to ``aiflow/run-<id>`` with pull request #7 on ``acme/app``."""
    forge_connection_put(
        project=project,
        kind="github",
        repository="acme/app",
        token="ghp_notsentanywhere",
        webhook_secret=SECRET,
    )
    run = make_completed_run(project, {"app.py": "print('v2')\n"}, prompt="Say v2")
    RunDelivery.objects.create(
        run=run,
        branch=f"aiflow/run-{run.pk}",
        state="delivered",
        commit="a" * 40,
        pull_request_number=7,
        pull_request_url="https://github.com/acme/app/pull/7",
        pull_request_state="open",
        requested_at=timezone.now(),
        delivered_at=timezone.now(),
    )
    return run


def comment_payload(number: int = 7, repository: str = "acme/app", text: str = COMMENT) -> dict:
    return {
        "action": "created",
        "issue": {"number": number, "pull_request": {"url": "https://api.github.com/..."}},
        "comment": {"id": 991, "body": text, "user": {"login": "ada"}},
        "repository": {"full_name": repository},
    }


def post_hook(
    client: Any,
    project_id: int,
    payload: dict | bytes,
    *,
    delivery: str = "3f1c-delivery",
    secret: str = SECRET,
    kind: str = "github",
) -> Any:
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    signature = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return client.generic(
        "POST",
        f"/hooks/{kind}/{project_id}",
        body,
        content_type="application/json",
        HTTP_X_GITHUB_EVENT="issue_comment",
        HTTP_X_GITHUB_DELIVERY=delivery,
        HTTP_X_HUB_SIGNATURE_256=signature,
    )


def follow_ups(run: Run) -> list[Run]:
    return list(Run.objects.filter(base_run=run))


def test_a_review_comment_starts_one_follow_up_delivered_to_the_same_branch(
    anon_client: Any, project: Any, delivered: Run
) -> None:
    response = post_hook(anon_client, project.pk, comment_payload())

    assert response.status_code == 202, response.json()
    [run] = follow_ups(delivered)
    assert response.json() == {
        "status": "started",
        "run_id": run.pk,
        "events_url": f"/runs/{run.pk}/events",
    }
    assert (run.prompt, run.base_run_id, run.created_by_id) == (
        COMMENT,
        delivered.pk,
        project.owner_id,
    )
    delivery = RunDelivery.objects.get(run=run)
    assert (delivery.branch, delivery.state, delivery.pull_request, delivery.trigger) == (
        f"aiflow/run-{delivered.pk}",
        "waiting",
        True,
        "review",
    )
    hook = ReviewHook.objects.get()
    assert (hook.delivery_id, hook.pull_request_number, hook.author, hook.run_id) == (
        "3f1c-delivery",
        7,
        "ada",
        run.pk,
    )


def test_a_replayed_delivery_starts_nothing(anon_client: Any, project: Any, delivered: Run) -> None:
    first = post_hook(anon_client, project.pk, comment_payload())
    replay = post_hook(anon_client, project.pk, comment_payload())

    assert (first.status_code, replay.status_code) == (202, 200)
    assert replay.json() == {
        "status": "duplicate",
        "reason": "this delivery was handled already",
        "run_id": first.json()["run_id"],
    }
    assert len(follow_ups(delivered)) == 1


def test_a_bad_signature_is_refused_and_starts_nothing(
    anon_client: Any, project: Any, delivered: Run
) -> None:
    response = post_hook(anon_client, project.pk, comment_payload(), secret="not-the-secret")

    assert response.status_code == 401
    assert response.json() == {
        "detail": "The webhook's signature does not match.",
        "code": "bad_signature",
    }
    assert follow_ups(delivered) == []
    assert not ReviewHook.objects.exists()


def test_the_signature_is_checked_before_the_body_is_read(
    anon_client: Any, project: Any, delivered: Run
) -> None:
    garbage = b"{not json at all"
    unsigned = post_hook(anon_client, project.pk, garbage, secret="not-the-secret")
    signed = post_hook(anon_client, project.pk, garbage)

    assert (unsigned.status_code, unsigned.json()["code"]) == (401, "bad_signature")
    assert (signed.status_code, signed.json()) == (
        200,
        {"status": "ignored", "reason": "the payload is not JSON"},
    )


def test_a_comment_on_someone_elses_pull_request_is_ignored(
    anon_client: Any, project: Any, delivered: Run
) -> None:
    response = post_hook(anon_client, project.pk, comment_payload(number=8))

    assert (response.status_code, response.json()) == (
        200,
        {"status": "ignored", "reason": "not a pull request this project delivered"},
    )
    assert follow_ups(delivered) == []


def test_a_comment_on_another_repository_is_ignored(
    anon_client: Any, project: Any, delivered: Run
) -> None:
    response = post_hook(anon_client, project.pk, comment_payload(repository="evil/app"))

    assert (response.status_code, response.json()["status"]) == (200, "ignored")
    assert follow_ups(delivered) == []


def test_a_project_without_webhooks_or_another_forge_kind_answers_401(
    anon_client: Any, project: Any, delivered: Run, other_user: Any
) -> None:
    from tests.factories import ProjectFactory

    bare = ProjectFactory(owner=other_user)
    wrong_kind = post_hook(anon_client, project.pk, comment_payload(), kind="gitea")
    no_forge = post_hook(anon_client, bare.pk, comment_payload())
    no_project = post_hook(anon_client, 999_999, comment_payload())

    assert [r.status_code for r in (wrong_kind, no_forge, no_project)] == [401, 401, 401]
    assert follow_ups(delivered) == []


def test_follow_ups_from_comments_are_rate_limited_per_project(
    anon_client: Any, project: Any, delivered: Run, settings: Any
) -> None:
    settings.ACCOUNTS_RATE_LIMITS = {**settings.ACCOUNTS_RATE_LIMITS, "forge_hook": "2/hour"}

    answers = [
        post_hook(anon_client, project.pk, comment_payload(), delivery=f"d-{n}").status_code
        for n in range(3)
    ]

    assert answers == [202, 202, 429]
    assert len(follow_ups(delivered)) == 2


def test_a_comment_that_cannot_be_a_prompt_is_ignored_with_the_reason(
    anon_client: Any, project: Any, delivered: Run, settings: Any
) -> None:
    settings.PIPELINE_PROMPT_MAX_CHARS = 10

    response = post_hook(anon_client, project.pk, comment_payload())

    assert (response.status_code, response.json()) == (
        200,
        {"status": "ignored", "reason": "The prompt may be at most 10 characters."},
    )
    assert follow_ups(delivered) == []
    assert not ReviewHook.objects.exists()


def test_a_gitlab_note_on_our_merge_request_starts_a_follow_up(
    anon_client: Any, project: Any
) -> None:
    forge_connection_put(
        project=project,
        kind="gitlab",
        repository="group/app",
        token="glpat-notsentanywhere",
        webhook_secret=SECRET,
    )
    run = make_completed_run(project, {"app.py": "print('v2')\n"})
    RunDelivery.objects.create(
        run=run,
        branch="aiflow/mr",
        state="delivered",
        commit="a" * 40,
        pull_request_number=4,
        requested_at=timezone.now(),
        delivered_at=timezone.now(),
    )
    note = {
        "object_kind": "note",
        "user": {"username": "dave"},
        "project": {"path_with_namespace": "group/app"},
        "object_attributes": {
            "id": 77,
            "note": "Use a context manager.",
            "noteable_type": "MergeRequest",
            "action": "create",
        },
        "merge_request": {"iid": 4, "source_branch": "aiflow/mr"},
    }

    def send(token: str) -> Any:
        return anon_client.generic(
            "POST",
            f"/hooks/gitlab/{project.pk}",
            json.dumps(note).encode(),
            content_type="application/json",
            HTTP_X_GITLAB_EVENT="Note Hook",
            HTTP_X_GITLAB_EVENT_UUID="uuid-1",
            HTTP_X_GITLAB_TOKEN=token,
        )

    wrong = send("not-the-secret")
    right = send(SECRET)

    assert (wrong.status_code, right.status_code) == (401, 202)
    [follow_up] = follow_ups(run)
    assert (follow_up.prompt, RunDelivery.objects.get(run=follow_up).branch) == (
        "Use a context manager.",
        "aiflow/mr",
    )
