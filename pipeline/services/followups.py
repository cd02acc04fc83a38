"""Follow-up runs: a run that plans a change to an earlier run's tree (its ``base_run``).

``run_generate`` is what ``POST /projects/{id}/generate``, the dashboard's Generate and
Follow up forms and ``manage.py generate`` call: it picks the base run (by default the
project's latest completed run; ``None`` for a fresh start), then starts the run through
``run_start`` with that base (the run row carries it from its first moment).
"""

from __future__ import annotations

from typing import Any, Final, Literal

from django.db import transaction

from common.errors import ApplicationError, NotFound
from common.logging import get_logger

from ..models import Run
from ..selectors import run_latest_completed
from .runs import run_start

logger = get_logger(__name__)

# ``base_run`` left out: the project's latest completed run (None when it has none yet).
LATEST: Final = "latest"
BaseRunChoice = int | None | Literal["latest"]


def run_base_resolve(*, project: Any, user: Any, base_run_id: BaseRunChoice) -> Run | None:
    """The run a new run of ``project`` builds on, or None for a fresh start.

    ``LATEST`` picks the project's newest completed run; an id must name a completed run of
    this project: another user's run is ``NotFound`` (404), the user's own run of another
    project or an unfinished run is ``ApplicationError`` (400).
    """
    if base_run_id is None:
        return None
    if base_run_id == LATEST:
        return run_latest_completed(project=project)
    base = Run.objects.filter(id=base_run_id, project__owner=user).first()
    if base is None:
        raise NotFound("Base run not found.")
    if base.project_id != project.pk:
        raise ApplicationError(
            f"Run {base.pk} belongs to another project; a follow-up builds on a run of its "
            "own project.",
            code="base_run_other_project",
        )
    if base.status != Run.Status.COMPLETED:
        raise ApplicationError(
            f"Run {base.pk} is {base.status}; a follow-up builds on a completed run.",
            code="base_run_not_completed",
        )
    return base


def run_generate(
    *,
    project: Any,
    user: Any,
    prompt: str,
    options: dict[str, Any] | None = None,
    base_run_id: BaseRunChoice = LATEST,
    deliver: dict[str, Any] | None = None,
) -> Run:
    """Start a run of ``project`` for ``prompt`` on top of its base run (see the module).

    ``deliver`` (``{branch?, pull_request?}``) asks for the run's delivery to the project's
    forge once it completes; a refusal (no forge, a bad branch) starts no run.
    """
    with transaction.atomic():
        base = run_base_resolve(project=project, user=user, base_run_id=base_run_id)
        run = run_start(project=project, user=user, prompt=prompt, options=options, base_run=base)
        if deliver is not None:
            from ..delivery.services import run_deliver_when_completed

            run_deliver_when_completed(
                run=run,
                user=user,
                branch=deliver.get("branch") or None,
                pull_request=deliver.get("pull_request", True),
            )
    logger.info("run.generate", run_id=run.pk, base_run_id=base.pk if base else None)
    return run
