"""Review comments become follow-up runs: ``POST /hooks/{kind}/{project_id}``.

The forge's signature is verified before a byte of the payload is read
(``repositories.webhooks.verified_review_comment``). A review comment on one of the
project's delivered pull requests starts exactly one follow-up run: its prompt is the
comment, its base the run last delivered to that pull request's branch, and it is delivered
to the same branch when it completes (one new commit) and updates the same pull request.
The forge's delivery id is a unique row written in the transaction that starts the run, so a
replayed delivery starts nothing. Everything else (another event, an issue, someone else's
pull request) is answered 200 and ignored. Follow-ups are rate-limited per project.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from django.conf import settings
from django.db import IntegrityError, transaction
from limits.errors import StorageError

from accounts.ratelimit import limiter, rate, seconds_until_free
from common.errors import ApplicationError, QuotaExceeded, ServiceUnavailable
from common.logging import get_logger
from repositories.errors import WebhookRejected
from repositories.selectors import forge_connection_for_project
from repositories.webhooks import Ignored, ReviewComment, verified_review_comment

from ..models import ReviewHook, Run, RunDelivery
from ..services.runs import run_start
from .selectors import delivery_for_pull_request
from .services import run_deliver_when_completed

logger = get_logger(__name__)

RATE_SCOPE = "forge_hook"


@dataclass(frozen=True)
class HookOutcome:
    """What a forge webhook did: ``started`` a run, was a ``duplicate`` of one that did, or
    was ``ignored`` (with the reason)."""

    status: str
    reason: str = ""
    run: Run | None = None


def _rate_hit(project_id: int) -> None:
    item = rate(settings.ACCOUNTS_RATE_LIMITS[RATE_SCOPE])
    identity = f"project:{project_id}"
    try:
        allowed = limiter().hit(item, RATE_SCOPE, identity)
        wait = 0 if allowed else seconds_until_free(item, RATE_SCOPE, identity)
    except StorageError as exc:
        raise ServiceUnavailable(
            "Rate limiting is unavailable; deliver the webhook again shortly.",
            code="rate_limit_unavailable",
        ) from exc
    if wait:
        raise QuotaExceeded(
            f"Too many follow-up runs from review comments on this project; try again in {wait} s.",
            code="rate_limited",
            extra={"retry_after": wait},
        )


def review_comment_receive(
    *, kind: str, project_id: int, headers: Mapping[str, str], body: bytes
) -> HookOutcome:
    """Verify a forge webhook for ``project_id`` and act on it (see the module).

    Raises ``WebhookRejected`` (401) for a project without webhooks set up or a signature
    that does not verify, ``QuotaExceeded`` (429) past the per-project rate.
    """
    connection = forge_connection_for_project(project_id=project_id)
    if connection is None:
        raise WebhookRejected("Webhooks are not set up for this project.")
    event = verified_review_comment(connection=connection, kind=kind, headers=headers, body=body)
    if isinstance(event, Ignored):
        return HookOutcome("ignored", event.reason)
    return _follow_up(project_id=project_id, comment=event)


def _follow_up(*, project_id: int, comment: ReviewComment) -> HookOutcome:
    ours = delivery_for_pull_request(
        project_id=project_id, number=comment.pull_request, branch=comment.head_branch
    )
    if ours is None:
        return HookOutcome("ignored", "not a pull request this project delivered")
    seen = ReviewHook.objects.filter(
        project_id=project_id, kind=comment.kind, delivery_id=comment.delivery_id
    ).first()
    if seen is not None:
        return HookOutcome("duplicate", "this delivery was handled already", seen.run)
    _rate_hit(project_id)
    base = ours.run
    project = base.project
    try:
        with transaction.atomic():
            hook = ReviewHook.objects.create(
                project_id=project_id,
                kind=comment.kind,
                delivery_id=comment.delivery_id[:200],
                pull_request_number=comment.pull_request,
                comment_id=comment.comment_id[:100],
                author=comment.author[:200],
            )
            run = run_start(
                project=project,
                user=project.owner,
                prompt=comment.text,
                options=_options_of(base),
                base_run=base,
            )
            run_deliver_when_completed(
                run=run,
                user=None,
                branch=ours.branch,
                pull_request=True,
                trigger=RunDelivery.Trigger.REVIEW,
            )
            hook.run = run
            hook.save(update_fields=["run"])
    except IntegrityError:
        # The same delivery, handled by another request at the same moment.
        seen = ReviewHook.objects.filter(
            project_id=project_id, kind=comment.kind, delivery_id=comment.delivery_id
        ).first()
        return HookOutcome(
            "duplicate", "this delivery was handled already", seen.run if seen else None
        )
    except ApplicationError as exc:
        if isinstance(exc, QuotaExceeded):
            raise
        # The comment cannot be a run (too long a prompt, say): said plainly, nothing started.
        return HookOutcome("ignored", exc.detail)
    logger.info(
        "delivery.review_follow_up",
        project_id=project_id,
        base_run_id=base.pk,
        run_id=run.pk,
        pull_request=comment.pull_request,
    )
    return HookOutcome("started", run=run)


def _options_of(base: Run) -> dict:
    """The follow-up runs as its base ran (models, rounds, approval gate), within today's
    limits (the options are validated again)."""
    options = dict(base.options or {})
    options.pop("budget_usd", None)  # the operator's default budget applies afresh
    return options
