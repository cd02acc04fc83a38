"""A run is never deleted while it is moving: it is cancelled first.

Deleting a project deletes its runs (and the admin may delete runs). Before each active run
goes, it is cancelled exactly as ``POST /runs/{id}/cancel`` cancels it (``run_cancel_if_active``):
its pending steps are skipped, ``run.cancelled`` reaches its open streams, and its queued
tasks are revoked once the deletion commits, so no worker goes on paying for its calls. What
its calls cost stays in the spend ledger (``spending``), which outlives the run.
"""

from typing import Any

from django.db.models.signals import pre_delete
from django.dispatch import receiver

from .models import Run


@receiver(pre_delete, sender=Run, dispatch_uid="pipeline.run_cancel_before_delete")
def run_cancel_before_delete(sender: type[Run], instance: Run, **kwargs: Any) -> None:
    """Cancel ``instance`` (if active) inside the deletion's transaction."""
    if instance.status in Run.UNFINISHED:
        from .services.runs import run_cancel_if_active

        run_cancel_if_active(run_id=instance.pk, reason="deleted")
