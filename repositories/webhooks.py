"""Incoming forge webhooks: verified first, then read as "a review comment on a pull request".

Verification comes before any byte of the payload is parsed, in constant time:
GitHub signs the raw body with HMAC-SHA256 (``X-Hub-Signature-256: sha256=<hex>``), Gitea and
Forgejo likewise without the prefix (``X-Gitea-Signature``; Forgejo also sends
``X-Forgejo-Signature``), GitLab sends the shared secret itself (``X-Gitlab-Token``). A project
without a webhook secret accepts nothing.

``verified_review_comment`` is what a webhook view calls: it returns a ``ReviewComment`` (the
pull request's number, the text, the author, the forge's delivery id to deduplicate on), or
an ``Ignored`` with the reason (another event, another repository, an edit), or raises
``WebhookRejected`` (401).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from .errors import WebhookRejected
from .models import ForgeConnection

MAX_BODY_BYTES = 5 * 1024 * 1024


@dataclass(frozen=True)
class ReviewComment:
    """A comment left on one of a repository's pull requests, as a forge reported it."""

    kind: str  # github, gitea, gitlab
    repository: str  # owner/name as the forge names it
    pull_request: int  # number (GitHub, Gitea) or iid (GitLab)
    text: str
    author: str
    delivery_id: str  # the forge's id of this delivery: a repeat carries the same one
    comment_id: str
    head_branch: str | None = None  # when the payload names it


@dataclass(frozen=True)
class Ignored:
    """A verified webhook that asks for nothing, and why."""

    reason: str


def _headers(headers: Mapping[str, str]) -> dict[str, str]:
    return {name.lower(): value for name, value in headers.items()}


def _hmac_hex(secret: str, body: bytes) -> str:
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify_signature(kind: str, headers: Mapping[str, str], body: bytes, secret: str) -> None:
    """Raise ``WebhookRejected`` unless ``body`` carries ``secret``'s signature for ``kind``."""
    if not secret:
        raise WebhookRejected("Webhooks are not set up for this project.")
    seen = _headers(headers)
    if kind == "github":
        given = seen.get("x-hub-signature-256", "")
        expected = "sha256=" + _hmac_hex(secret, body)
    elif kind == "gitea":
        given = seen.get("x-gitea-signature") or seen.get("x-forgejo-signature") or ""
        expected = _hmac_hex(secret, body)
    elif kind == "gitlab":
        given = seen.get("x-gitlab-token", "")
        expected = secret
    else:
        raise WebhookRejected("Unknown forge.")
    if not given or not hmac.compare_digest(given.strip().encode(), expected.encode()):
        raise WebhookRejected("The webhook's signature does not match.")


def _get(payload: Any, *path: str) -> Any:
    for key in path:
        if not isinstance(payload, dict):
            return None
        payload = payload.get(key)
    return payload


def _github(event: str, payload: dict, delivery: str) -> ReviewComment | Ignored:
    repository = str(_get(payload, "repository", "full_name") or "")
    action = payload.get("action")
    if event == "issue_comment":
        if _get(payload, "issue", "pull_request") is None:
            return Ignored("a comment on an issue, not a pull request")
        if action != "created":
            return Ignored(f"a comment {action}, not created")
        number, comment, branch = _get(payload, "issue", "number"), payload.get("comment"), None
    elif event == "pull_request_review_comment":
        if action != "created":
            return Ignored(f"a review comment {action}, not created")
        number, comment = _get(payload, "pull_request", "number"), payload.get("comment")
        branch = _get(payload, "pull_request", "head", "ref")
    elif event == "pull_request_review":
        if action != "submitted" or not _get(payload, "review", "body"):
            return Ignored("a review without text")
        number, comment = _get(payload, "pull_request", "number"), payload.get("review")
        branch = _get(payload, "pull_request", "head", "ref")
    else:
        return Ignored(f"the event {event or '(none)'} is not a review comment")
    return _comment("github", repository, number, comment, delivery, branch)


def _gitea(event: str, payload: dict, delivery: str) -> ReviewComment | Ignored:
    repository = str(_get(payload, "repository", "full_name") or "")
    action = payload.get("action")
    if event == "issue_comment":
        if not payload.get("is_pull"):
            return Ignored("a comment on an issue, not a pull request")
        if action != "created":
            return Ignored(f"a comment {action}, not created")
        number = _get(payload, "issue", "number")
        branch = _get(payload, "pull_request", "head", "ref")
        return _comment("gitea", repository, number, payload.get("comment"), delivery, branch)
    if event == "pull_request_comment":
        # A review with comments: the review's text is the comment.
        review = payload.get("review") or {}
        text = review.get("content")
        if not text:
            return Ignored("a review without text")
        comment = {"body": text, "user": payload.get("sender"), "id": delivery}
        number = payload.get("number") or _get(payload, "pull_request", "number")
        branch = _get(payload, "pull_request", "head", "ref")
        return _comment("gitea", repository, number, comment, delivery, branch)
    return Ignored(f"the event {event or '(none)'} is not a review comment")


def _gitlab(event: str, payload: dict, delivery: str) -> ReviewComment | Ignored:
    if payload.get("object_kind") != "note":
        return Ignored(f"the event {event or '(none)'} is not a comment")
    note = payload.get("object_attributes") or {}
    if note.get("noteable_type") != "MergeRequest":
        return Ignored("a comment on something other than a merge request")
    if note.get("action") not in (None, "create"):
        return Ignored(f"a comment {note.get('action')}, not created")
    repository = str(_get(payload, "project", "path_with_namespace") or "")
    number = _get(payload, "merge_request", "iid")
    comment = {"body": note.get("note"), "user": payload.get("user"), "id": note.get("id")}
    branch = _get(payload, "merge_request", "source_branch")
    return _comment(
        "gitlab", repository, number, comment, delivery or f"note-{note.get('id')}", branch
    )


def _comment(
    kind: str,
    repository: str,
    number: Any,
    comment: Any,
    delivery: str,
    branch: Any,
) -> ReviewComment | Ignored:
    if not isinstance(comment, dict) or not isinstance(number, int) or not repository:
        return Ignored("the payload does not name a pull request and a comment")
    text = comment.get("body")
    user = comment.get("user")
    author = (user.get("login") or user.get("username") or "") if isinstance(user, dict) else ""
    if not isinstance(text, str) or not text.strip():
        return Ignored("an empty comment")
    if not delivery:
        return Ignored("the delivery carries no id")
    return ReviewComment(
        kind=kind,
        repository=repository,
        pull_request=number,
        text=text,
        author=str(author),
        delivery_id=delivery,
        comment_id=str(comment.get("id", "")),
        head_branch=branch if isinstance(branch, str) else None,
    )


def parse_review_comment(
    kind: str, headers: Mapping[str, str], body: bytes
) -> ReviewComment | Ignored:
    """Read a (verified) payload of forge ``kind`` as a review comment, or say why not."""
    seen = _headers(headers)
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError:
        return Ignored("the payload is not JSON")
    if not isinstance(payload, dict):
        return Ignored("the payload is not a JSON object")
    if kind == "github":
        return _github(seen.get("x-github-event", ""), payload, seen.get("x-github-delivery", ""))
    if kind == "gitea":
        event = seen.get("x-gitea-event") or seen.get("x-forgejo-event") or ""
        delivery = seen.get("x-gitea-delivery") or seen.get("x-forgejo-delivery") or ""
        return _gitea(event, payload, delivery)
    if kind == "gitlab":
        delivery = seen.get("x-gitlab-event-uuid") or seen.get("x-gitlab-webhook-uuid") or ""
        return _gitlab(seen.get("x-gitlab-event", ""), payload, delivery)
    return Ignored(f"unknown forge {kind}")


def verified_review_comment(
    *, connection: ForgeConnection, kind: str, headers: Mapping[str, str], body: bytes
) -> ReviewComment | Ignored:
    """Verify a webhook for ``connection`` and read it: a ``ReviewComment`` on a pull request
    of the connection's own repository, an ``Ignored`` with the reason, or ``WebhookRejected``
    (a bad or missing signature, a forge kind that is not the connection's)."""
    if len(body) > MAX_BODY_BYTES:
        raise WebhookRejected("The webhook's payload is too large.")
    if kind != connection.kind:
        raise WebhookRejected("This project's forge is not of that kind.")
    secret = connection.secret("webhook_secret")
    verify_signature(kind, headers, body, secret.reveal() if secret else "")
    event = parse_review_comment(kind, headers, body)
    if (
        isinstance(event, ReviewComment)
        and event.repository.lower() != connection.repository.lower()
    ):
        return Ignored("a comment on another repository's pull request")
    return event
