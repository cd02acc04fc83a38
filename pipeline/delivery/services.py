"""Writes of delivery: ask for one, queue it when its run completes, carry it out.

A delivery is a ``RunDelivery`` row and a Celery task (``pipeline.deliver_run``) that carries
the row's ``attempt``. Asking again bumps the attempt, so an older task finds nothing to
claim; a task delivered twice (a worker died holding it) claims the same attempt again and
does the same thing again, which changes nothing on the forge: the commit carries the run's
delivery key (``aiflow-run-<id>``), a branch whose head carries it is left as it is, and the
pull request is found by its head branch and updated, never opened a second time.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

from celery import signature
from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from common.content import is_binary
from common.errors import ApplicationError, Conflict
from common.logging import get_logger
from common.outbound import OutboundFailed
from repositories.delivery import TreeChanges, check_branch, deliver, forge_of
from repositories.errors import DeliveryFailed, DeliveryRefused, GitFailed
from repositories.models import ForgeConnection
from repositories.selectors import forge_connection_for_project
from repositories.tree import ImportedTree

from ..events import publish
from ..models import ReviewHook, Run, RunDelivery
from .messages import co_author_of, commit_message, pull_request_body, title_of
from .selectors import (
    delivery_before_tree,
    delivery_opening_run,
    run_import_source,
    run_tree_bytes,
    tree_changes,
)

logger = get_logger(__name__)

TASK_NAME = "pipeline.deliver_run"
TASK_QUEUE = "default"
FULL_SHA = re.compile(r"^[0-9a-f]{40}([0-9a-f]{24})?$")
# Failures that may pass by themselves: the remote or the forge unreachable, too slow, or
# answering 5xx. Anything else (a refused token, a moved branch, no such repository) is the
# delivery's outcome until someone changes something.
TRANSIENT_CODES = frozenset(
    {"git_unreachable", "timeout", "unreachable", "unresolvable", "bad_answer", "forge_unavailable"}
)


class DeliveryRetry(Exception):
    """A transient failure the task should try again later (the row stays in flight)."""

    def __init__(self, cause: BaseException):
        super().__init__(str(cause))
        self.cause = cause


def default_branch(run: Run) -> str:
    """The branch a run goes to when nobody names one: ``aiflow/run-<id>``."""
    return f"{settings.REPOSITORY_DELIVERY_BRANCH_PREFIX}{run.pk}"


def _connection_required(run: Run) -> ForgeConnection:
    connection = forge_connection_for_project(project_id=run.project_id)
    if connection is None:
        raise ApplicationError(
            "This project has no forge connection: set one with PUT /projects/{id}/forge "
            "(or on the project page) first.",
            code="no_forge",
        )
    return connection


def _refuse_import_run(run: Run) -> None:
    source = run_import_source(run)
    if source is not None and source.run.pk == run.pk:
        raise ApplicationError(
            "An import has nothing to deliver: deliver a run that changed it.",
            code="nothing_to_deliver",
        )


def _send(delivery_id: int, attempt: int) -> None:
    signature(TASK_NAME, args=(delivery_id, attempt), immutable=True, queue=TASK_QUEUE).delay()


def _send_on_commit(delivery_id: int, attempt: int) -> None:
    # Robust: a broker that is away fails neither the request nor the run that asked; the
    # row stays queued and the beat sends it again (``deliveries_resend``).
    transaction.on_commit(lambda: _send(delivery_id, attempt), robust=True)


def _superseded(delivery: RunDelivery) -> bool:
    """A later run of the project was delivered to the same branch since this one was."""
    if delivery.delivered_at is None:
        return False
    return (
        RunDelivery.objects.filter(
            run__project_id=delivery.run.project_id,
            branch=delivery.branch,
            delivered_at__gt=delivery.delivered_at,
        )
        .exclude(pk=delivery.pk)
        .exists()
    )


def run_deliver(
    *,
    run: Run,
    user: Any,
    branch: str | None = None,
    pull_request: bool = True,
) -> RunDelivery:
    """Deliver a completed run now: push its branch (and open or update its pull request).

    Asking again delivers to the same branch and the same pull request: a run keeps the
    branch of its first delivery (naming another is a 409), a delivery under way is
    answered as it is, and a run whose branch a later run was delivered to is a 409.
    """
    if run.status != Run.Status.COMPLETED:
        raise Conflict(
            f"Run {run.pk} is {run.status}; only a completed run can be delivered.",
            code="run_not_completed",
        )
    _refuse_import_run(run)
    _connection_required(run)
    with transaction.atomic():
        delivery = RunDelivery.objects.select_for_update().filter(run_id=run.pk).first()
        if delivery is None:
            delivery = RunDelivery.objects.create(
                run=run,
                branch=check_branch(branch or default_branch(run)),
                pull_request=pull_request,
                trigger=RunDelivery.Trigger.REQUEST,
                state=RunDelivery.State.QUEUED,
                requested_by=user,
                requested_at=timezone.now(),
            )
            _send_on_commit(delivery.pk, delivery.attempt)
        else:
            if branch and check_branch(branch) != delivery.branch:
                raise Conflict(
                    f"Run {run.pk} is delivered to {delivery.branch}; it stays on that branch.",
                    code="delivery_branch_fixed",
                )
            delivery.run = run
            if delivery.state in RunDelivery.IN_FLIGHT:
                # Under way: the task reads this flag before it turns to the pull request.
                if pull_request and not delivery.pull_request:
                    delivery.pull_request = True
                    delivery.save(update_fields=["pull_request", "updated_at"])
                return delivery
            if _superseded(delivery):
                raise Conflict(
                    f"A later run was delivered to {delivery.branch}; deliver that one "
                    "(or follow it up).",
                    code="delivery_superseded",
                )
            delivery.state = RunDelivery.State.QUEUED
            delivery.attempt += 1
            delivery.pull_request = pull_request or delivery.pull_request_number is not None
            delivery.requested_by = user
            delivery.requested_at = timezone.now()
            delivery.error = delivery.error_code = ""
            delivery.save()
            _send_on_commit(delivery.pk, delivery.attempt)
    logger.info(
        "delivery.requested", run_id=run.pk, branch=delivery.branch, attempt=delivery.attempt
    )
    return delivery


def run_deliver_when_completed(
    *,
    run: Run,
    user: Any,
    branch: str | None = None,
    pull_request: bool = True,
    trigger: str = RunDelivery.Trigger.GENERATE,
) -> RunDelivery:
    """Ask for the delivery of a run that has not finished yet (``deliver`` of generate, a
    review comment's follow-up): it is queued the moment the run completes. Inside the
    caller's transaction, so a refusal here starts no run."""
    _connection_required(run)
    return RunDelivery.objects.create(
        run=run,
        branch=check_branch(branch or default_branch(run)),
        pull_request=pull_request,
        trigger=trigger,
        state=RunDelivery.State.WAITING,
        attempt=0,
        requested_by=user,
        requested_at=timezone.now(),
    )


def delivery_on_run_completed(*, run_id: int) -> bool:
    """Queue the delivery that waited for ``run_id`` to complete (once); called in the
    transaction that completes the run, so the task is sent only if that commits."""
    claimed = RunDelivery.objects.filter(run_id=run_id, state=RunDelivery.State.WAITING).update(
        state=RunDelivery.State.QUEUED, attempt=F("attempt") + 1, updated_at=timezone.now()
    )
    if not claimed:
        return False
    delivery_id, attempt = RunDelivery.objects.filter(run_id=run_id).values_list("pk", "attempt")[0]
    _send_on_commit(delivery_id, attempt)
    logger.info("delivery.queued", run_id=run_id, attempt=attempt)
    return True


# --- carrying a delivery out (the task's body) -----------------------------------------------


def is_transient(exc: BaseException) -> bool:
    """Whether a failure may pass by itself (see ``TRANSIENT_CODES``)."""
    return (
        isinstance(exc, GitFailed | DeliveryFailed | OutboundFailed)
        and getattr(exc, "code", "") in TRANSIENT_CODES
    )


def _pull_request_base(source: Any) -> str | None:
    """The branch a pull request goes into: the branch the import named, else the
    repository's default branch (None)."""
    if source is None or source.kind != "git":
        return None
    ref = source.ref.removeprefix("refs/heads/")
    if not ref or ref == "HEAD" or FULL_SHA.match(ref) or ref.startswith("refs/"):
        return None
    return ref


def _archive_tree(files: dict[str, bytes]) -> ImportedTree:
    tree = ImportedTree(source="archive", files=dict(files))
    tree.binary = {path for path, data in files.items() if is_binary(data)}
    return tree


def _comment_author(run: Run) -> str:
    return (
        ReviewHook.objects.filter(run=run).values_list("author", flat=True).first() or ""
    ).strip()


def _record(delivery_id: int, attempt: int, event: tuple[str, dict] | None, **fields: Any) -> bool:
    """Update the row of ``attempt`` (not a newer one) and publish the event with it."""
    with transaction.atomic():
        updated = RunDelivery.objects.filter(pk=delivery_id, attempt=attempt).update(
            **fields, updated_at=timezone.now()
        )
        if updated and event is not None:
            run_id = RunDelivery.objects.values_list("run_id", flat=True).get(pk=delivery_id)
            publish(run_id=run_id, type=event[0], payload=event[1])
    return bool(updated)


def _carry_out(delivery: RunDelivery, attempt: int) -> None:
    run = delivery.run
    connection = forge_connection_for_project(project_id=run.project_id)
    if connection is None:
        raise DeliveryRefused("The project has no forge connection any more.", code="no_forge")
    source = run_import_source(run)
    before = delivery_before_tree(run=run, branch=delivery.branch)
    changed, deleted = tree_changes(before.files, run_tree_bytes(run=run))
    base_tree = None
    if source is not None and source.kind == "archive":
        base_tree = _archive_tree(run_tree_bytes(run=source.run))
    title = title_of(run)
    outcome = deliver(
        connection=connection,
        branch=delivery.branch,
        changes=TreeChanges(files=changed, deleted=deleted),
        message=commit_message(run),
        title=title,
        body="",
        co_author=co_author_of(run.created_by or delivery.requested_by),
        base_commit=(source.commit or None) if source is not None else None,
        base_tree=base_tree,
        pull_request=False,
        delivery_key=f"aiflow-run-{run.pk}",
    )
    pushed = outcome.push
    _record(
        delivery.pk,
        attempt,
        (
            "delivery.pushed",
            {
                "branch": pushed.branch,
                "commit": pushed.commit,
                "parent": pushed.parent,
                "root_commit": pushed.root_commit,
                "created_branch": pushed.created_branch,
                "new_commit": pushed.pushed,
            },
        ),
        commit=pushed.commit,
        root_commit=pushed.root_commit or "",
    )
    wants_pull_request = (
        RunDelivery.objects.filter(pk=delivery.pk).values_list("pull_request", flat=True).first()
    )
    fields: dict[str, Any] = {}
    if wants_pull_request:
        opening = delivery_opening_run(project_id=run.project_id, branch=delivery.branch)
        pull = forge_of(connection).open_or_update_pull_request(
            branch=delivery.branch,
            title=title_of(opening or run),
            body=pull_request_body(run, comment_author=_comment_author(run)),
            base=_pull_request_base(source),
        )
        fields = {
            "pull_request_number": pull.number,
            "pull_request_url": pull.url[:500],
            "pull_request_state": pull.state[:32],
        }
        _record(
            delivery.pk,
            attempt,
            (
                "delivery.pull_request",
                {
                    "number": pull.number,
                    "url": pull.url,
                    "state": pull.state,
                    "created": pull.created,
                },
            ),
            **fields,
        )
    _record(
        delivery.pk,
        attempt,
        None,
        state=RunDelivery.State.DELIVERED,
        delivered_at=timezone.now(),
        error="",
        error_code="",
    )
    logger.info(
        "delivery.done",
        run_id=run.pk,
        branch=delivery.branch,
        commit=pushed.commit,
        new_commit=pushed.pushed,
        pull_request=fields.get("pull_request_number"),
    )


def delivery_fail(*, delivery_id: int, attempt: int, exc: BaseException) -> None:
    """End the delivery of ``attempt`` as failed, with a plain reason and ``delivery.failed``."""
    if isinstance(exc, ApplicationError):
        code, detail = exc.code, exc.detail
    else:
        code, detail = "delivery_crashed", "The delivery failed unexpectedly; see the worker's log."
    _record(
        delivery_id,
        attempt,
        ("delivery.failed", {"code": code, "detail": detail}),
        state=RunDelivery.State.FAILED,
        error=detail[:4000],
        error_code=code[:64],
    )
    logger.warning("delivery.failed", delivery_id=delivery_id, code=code)


def delivery_execute(*, delivery_id: int, attempt: int, last_try: bool = True) -> bool:
    """Carry out the delivery of ``attempt`` if it is still the one asked for; whether it ran.

    A transient failure raises ``DeliveryRetry`` (the row stays in flight) unless it is the
    ``last_try``; any other failure ends the delivery as failed.
    """
    claimed = RunDelivery.objects.filter(
        pk=delivery_id, attempt=attempt, state__in=RunDelivery.IN_FLIGHT
    ).update(state=RunDelivery.State.PUSHING, updated_at=timezone.now())
    if not claimed:
        return False
    delivery = RunDelivery.objects.select_related("run__created_by", "requested_by").get(
        pk=delivery_id
    )
    try:
        _carry_out(delivery, attempt)
    except Exception as exc:
        if is_transient(exc) and not last_try:
            logger.warning(
                "delivery.transient", delivery_id=delivery_id, code=getattr(exc, "code", "")
            )
            raise DeliveryRetry(exc) from exc
        if not isinstance(exc, ApplicationError):
            logger.exception("delivery.crashed", delivery_id=delivery_id)
        delivery_fail(delivery_id=delivery_id, attempt=attempt, exc=exc)
    return True


def deliveries_resend() -> list[int]:
    """Queue again the deliveries in flight for longer than REPOSITORY_DELIVERY_STALE_SECONDS
    (their task was lost: a worker died, the broker dropped it); the beat calls this."""
    stale = timezone.now() - timedelta(seconds=settings.REPOSITORY_DELIVERY_STALE_SECONDS)
    resent = []
    for pk in RunDelivery.objects.filter(
        state__in=RunDelivery.IN_FLIGHT, updated_at__lt=stale
    ).values_list("pk", flat=True):
        with transaction.atomic():
            delivery = (
                RunDelivery.objects.select_for_update(skip_locked=True)
                .filter(pk=pk, state__in=RunDelivery.IN_FLIGHT, updated_at__lt=stale)
                .first()
            )
            if delivery is None:
                continue
            delivery.attempt += 1
            delivery.state = RunDelivery.State.QUEUED
            delivery.save(update_fields=["attempt", "state", "updated_at"])
            _send_on_commit(delivery.pk, delivery.attempt)
            resent.append(delivery.run_id)
    if resent:
        logger.warning("delivery.resent", runs=resent)
    return resent
