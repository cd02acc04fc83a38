"""Incoming forge webhooks: signatures verified (constant time) before anything is read, each
forge's review-comment payload read into one shape, everything else ignored with a reason."""

import hashlib
import hmac
import json

import pytest

from repositories.errors import WebhookRejected
from repositories.services import forge_connection_put
from repositories.webhooks import (
    Ignored,
    ReviewComment,
    parse_review_comment,
    verified_review_comment,
    verify_signature,
)

SECRET = "whsec-test-7c1e"


def github_signed(event: str, payload: dict, delivery: str = "d-1") -> tuple[dict, bytes]:
    body = json.dumps(payload).encode()
    signature = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    return {
        "X-GitHub-Event": event,
        "X-GitHub-Delivery": delivery,
        "X-Hub-Signature-256": signature,
    }, body


def gitea_signed(event: str, payload: dict, delivery: str = "g-1") -> tuple[dict, bytes]:
    body = json.dumps(payload).encode()
    signature = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    return {
        "X-Gitea-Event": event,
        "X-Gitea-Delivery": delivery,
        "X-Gitea-Signature": signature,
    }, body


def gitlab_signed(payload: dict, delivery: str = "l-1") -> tuple[dict, bytes]:
    body = json.dumps(payload).encode()
    return {
        "X-Gitlab-Event": "Note Hook",
        "X-Gitlab-Event-UUID": delivery,
        "X-Gitlab-Token": SECRET,
    }, body


GITHUB_ISSUE_COMMENT = {
    "action": "created",
    "issue": {
        "number": 7,
        "pull_request": {"url": "https://api.github.com/repos/acme/app/pulls/7"},
    },
    "comment": {"id": 123, "body": "Please rename foo to bar.", "user": {"login": "ada"}},
    "repository": {"full_name": "acme/app"},
}
GITHUB_REVIEW_COMMENT = {
    "action": "created",
    "comment": {"id": 55, "body": "Guard against None here.", "user": {"login": "bob"}},
    "pull_request": {"number": 7, "head": {"ref": "aiflow/run-42"}},
    "repository": {"full_name": "acme/app"},
}
GITEA_COMMENT = {
    "action": "created",
    "issue": {"number": 3},
    "comment": {"id": 9, "body": "Add a test for the empty case.", "user": {"login": "ada"}},
    "repository": {"full_name": "acme/app"},
    "is_pull": True,
}
GITEA_REVIEW = {
    "action": "reviewed",
    "number": 3,
    "pull_request": {"number": 3, "head": {"ref": "aiflow/run-42"}},
    "review": {"type": "pull_request_review_comment", "content": "Split this function."},
    "sender": {"login": "carol"},
    "repository": {"full_name": "acme/app"},
}
GITLAB_NOTE = {
    "object_kind": "note",
    "user": {"username": "dave"},
    "project": {"path_with_namespace": "group/app"},
    "object_attributes": {
        "id": 77,
        "note": "Use a context manager.",
        "noteable_type": "MergeRequest",
        "action": "create",
    },
    "merge_request": {"iid": 4, "source_branch": "aiflow/run-42"},
}


@pytest.fixture
def connections(project):
    def make(kind: str, repository: str = "acme/app", secret: str = SECRET):
        return forge_connection_put(
            project=project,
            kind=kind,
            repository=repository,
            api_url="https://gitea.com/api/v1" if kind == "gitea" else None,
            token="tok",
            webhook_secret=secret,
        )

    return make


def test_a_github_pull_request_comment_is_read(connections):
    headers, body = github_signed("issue_comment", GITHUB_ISSUE_COMMENT)
    event = verified_review_comment(
        connection=connections("github"), kind="github", headers=headers, body=body
    )
    assert event == ReviewComment(
        kind="github",
        repository="acme/app",
        pull_request=7,
        text="Please rename foo to bar.",
        author="ada",
        delivery_id="d-1",
        comment_id="123",
        head_branch=None,
    )


def test_a_github_review_comment_names_the_head_branch(connections):
    headers, body = github_signed("pull_request_review_comment", GITHUB_REVIEW_COMMENT, "d-2")
    event = verified_review_comment(
        connection=connections("github"), kind="github", headers=headers, body=body
    )
    assert (event.pull_request, event.text, event.author, event.head_branch, event.delivery_id) == (
        7,
        "Guard against None here.",
        "bob",
        "aiflow/run-42",
        "d-2",
    )


def test_a_gitea_pull_request_comment_and_review_are_read(connections):
    connection = connections("gitea")
    headers, body = gitea_signed("issue_comment", GITEA_COMMENT)
    comment = verified_review_comment(
        connection=connection, kind="gitea", headers=headers, body=body
    )
    assert (comment.pull_request, comment.text, comment.author, comment.delivery_id) == (
        3,
        "Add a test for the empty case.",
        "ada",
        "g-1",
    )
    headers, body = gitea_signed("pull_request_comment", GITEA_REVIEW, "g-2")
    review = verified_review_comment(
        connection=connection, kind="gitea", headers=headers, body=body
    )
    assert (review.pull_request, review.text, review.author, review.head_branch) == (
        3,
        "Split this function.",
        "carol",
        "aiflow/run-42",
    )


def test_a_gitlab_merge_request_note_is_read(connections):
    headers, body = gitlab_signed(GITLAB_NOTE)
    event = verified_review_comment(
        connection=connections("gitlab", "group/app"), kind="gitlab", headers=headers, body=body
    )
    assert event == ReviewComment(
        kind="gitlab",
        repository="group/app",
        pull_request=4,
        text="Use a context manager.",
        author="dave",
        delivery_id="l-1",
        comment_id="77",
        head_branch="aiflow/run-42",
    )


@pytest.mark.parametrize(
    ("kind", "signed"),
    [
        ("github", lambda: github_signed("issue_comment", GITHUB_ISSUE_COMMENT)),
        ("gitea", lambda: gitea_signed("issue_comment", GITEA_COMMENT)),
    ],
)
def test_a_body_changed_after_signing_is_rejected(connections, kind, signed):
    headers, body = signed()
    tampered = body.replace(b"rename foo", b"delete all").replace(b"Add a test", b"Drop tests")
    with pytest.raises(WebhookRejected) as rejected:
        verified_review_comment(
            connection=connections(kind), kind=kind, headers=headers, body=tampered
        )
    assert (rejected.value.status_code, rejected.value.code) == (401, "bad_signature")
    assert rejected.value.detail == "The webhook's signature does not match."


def test_a_wrong_gitlab_token_is_rejected(connections):
    headers, body = gitlab_signed(GITLAB_NOTE)
    with pytest.raises(WebhookRejected) as rejected:
        verified_review_comment(
            connection=connections("gitlab", "group/app"),
            kind="gitlab",
            headers={**headers, "X-Gitlab-Token": SECRET + "x"},
            body=body,
        )
    assert (rejected.value.status_code, rejected.value.code) == (401, "bad_signature")


@pytest.mark.parametrize("kind", ["github", "gitea", "gitlab"])
def test_a_missing_signature_is_rejected(kind):
    with pytest.raises(WebhookRejected):
        verify_signature(kind, {}, b"{}", SECRET)


def test_a_project_without_a_webhook_secret_accepts_nothing(connections):
    connection = connections("github", secret="")
    headers, body = github_signed("issue_comment", GITHUB_ISSUE_COMMENT)
    with pytest.raises(WebhookRejected) as rejected:
        verified_review_comment(connection=connection, kind="github", headers=headers, body=body)
    assert rejected.value.detail == "Webhooks are not set up for this project."


def test_a_hook_for_another_kind_of_forge_is_rejected(connections):
    headers, body = gitea_signed("issue_comment", GITEA_COMMENT)
    with pytest.raises(WebhookRejected):
        verified_review_comment(
            connection=connections("github"), kind="gitea", headers=headers, body=body
        )


def test_a_comment_on_another_repositorys_pull_request_is_ignored(connections):
    other = {**GITHUB_ISSUE_COMMENT, "repository": {"full_name": "someone/else"}}
    headers, body = github_signed("issue_comment", other)
    event = verified_review_comment(
        connection=connections("github"), kind="github", headers=headers, body=body
    )
    assert event == Ignored("a comment on another repository's pull request")


NOT_A_PULL = "a comment on an issue, not a pull request"
GITLAB_ISSUE_NOTE = {
    **GITLAB_NOTE,
    "object_attributes": {"id": 78, "note": "x", "noteable_type": "Issue", "action": "create"},
}


@pytest.mark.parametrize(
    ("kind", "event", "payload", "reason"),
    [
        ("github", "ping", {"zen": "hi"}, "the event ping is not a review comment"),
        ("github", "issue_comment", {**GITHUB_ISSUE_COMMENT, "issue": {"number": 7}}, NOT_A_PULL),
        (
            "github",
            "issue_comment",
            {**GITHUB_ISSUE_COMMENT, "action": "edited"},
            "a comment edited, not created",
        ),
        ("gitea", "issue_comment", {**GITEA_COMMENT, "is_pull": False}, NOT_A_PULL),
        (
            "gitlab",
            "Note Hook",
            GITLAB_ISSUE_NOTE,
            "a comment on something other than a merge request",
        ),
    ],
)
def test_other_events_are_ignored_with_their_reason(kind, event, payload, reason):
    header = {"github": "X-GitHub-Event", "gitea": "X-Gitea-Event", "gitlab": "X-Gitlab-Event"}[
        kind
    ]
    body = json.dumps(payload).encode()
    assert parse_review_comment(kind, {header: event, "X-GitHub-Delivery": "d"}, body) == Ignored(
        reason
    )


def test_a_repeated_delivery_carries_the_same_id(connections):
    connection = connections("github")
    headers, body = github_signed("issue_comment", GITHUB_ISSUE_COMMENT, "same-delivery")
    first = verified_review_comment(
        connection=connection, kind="github", headers=headers, body=body
    )
    again = verified_review_comment(
        connection=connection, kind="github", headers=headers, body=body
    )
    assert (first, first.delivery_id) == (again, "same-delivery")
