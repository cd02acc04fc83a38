"""Follow a run's delivery from the terminal: poll its row until it is delivered or failed."""

from __future__ import annotations

import time
from collections.abc import Callable

from django.core.management.base import CommandError
from django.db import close_old_connections

from ..models import RunDelivery

DONE = (RunDelivery.State.DELIVERED, RunDelivery.State.FAILED)
# The exit codes of `deliver` and `generate --deliver`: the same for the same outcome.
EXIT_FAILED, EXIT_TIMEOUT = 1, 3


def delivery_follow(
    *, run_id: int, attempt: int = 0, timeout_seconds: float | None = None, poll: float = 0.5
) -> RunDelivery | None:
    """The run's delivery once it is delivered or failed (an attempt after ``attempt - 1``),
    or None when ``timeout_seconds`` passed first."""
    deadline = None if timeout_seconds is None else time.monotonic() + timeout_seconds
    while True:
        delivery = RunDelivery.objects.filter(run_id=run_id).first()
        if delivery is not None and delivery.state in DONE and delivery.attempt >= attempt:
            return delivery
        if deadline is not None and time.monotonic() > deadline:
            return None
        close_old_connections()
        time.sleep(poll)


def delivery_lines(delivery: RunDelivery) -> list[str]:
    """What the terminal shows of a finished delivery."""
    if delivery.state == RunDelivery.State.FAILED:
        return [f"Delivery failed ({delivery.error_code}): {delivery.error}"]
    lines = [f"Delivered: branch {delivery.branch} at {delivery.commit}"]
    if delivery.pull_request_url:
        lines.append(
            f"  pull request #{delivery.pull_request_number} ({delivery.pull_request_state}): "
            f"{delivery.pull_request_url}"
        )
    return lines


def delivery_report(
    write: Callable[[str], object],
    *,
    run_id: int,
    attempt: int,
    timeout_seconds: float | None,
    still_under_way: str,
) -> None:
    """Wait for the delivery, write how it ended, and exit non-zero unless it was delivered
    (``still_under_way``: the message when ``timeout_seconds`` passed first)."""
    done = delivery_follow(run_id=run_id, attempt=attempt, timeout_seconds=timeout_seconds)
    if done is None:
        raise CommandError(still_under_way, returncode=EXIT_TIMEOUT)
    for line in delivery_lines(done):
        write(line)
    if done.state != RunDelivery.State.DELIVERED:
        raise CommandError(f"Run {run_id} was not delivered.", returncode=EXIT_FAILED)
