"""Spending: every paid model call kept for good, and each user's tally against the daily cap.

``SpendEntry`` is the ledger: one row per paid call, written in the same statement that
stores the call's answer (``pipeline.services.ledger``), so a crash can neither lose nor
double it. It outlives projects and runs: their references are set to NULL when they are
deleted and their ids (and the project's name) stay copied on the row.

``SpendWindow`` is one row per user that the daily cap is checked against in one statement:
what the user's calls cost per ten minutes over the last day (``buckets``, added to by the
same statement that writes each ledger row) and what the calls in flight may still cost
(``reservations``, each a call's worst case, held from before the call until its answer is
stored). Every change to it is a single-row update, so concurrent calls queue on that row
and each sees what the others reserved.
"""

from decimal import Decimal

from django.conf import settings
from django.db import models


class SpendEntry(models.Model):
    """One paid model call: who paid, for which project, run and step, and what it cost.

    ``user``, ``project`` and ``run`` are references that become NULL when the row they name
    is deleted (no database constraint: a call stored while its run is being deleted must
    still land); ``user_ref``, ``project_ref``, ``run_ref`` and the names keep what they were.
    Rows are never changed or deleted by the platform.
    """

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        db_constraint=False,
        related_name="spend_entries",
    )
    user_ref = models.BigIntegerField(null=True, blank=True, help_text="The user's id, kept.")
    user_email = models.CharField(max_length=254, blank=True, default="")
    project = models.ForeignKey(
        "projects.Project",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        db_constraint=False,
        related_name="+",
    )
    project_ref = models.BigIntegerField(null=True, blank=True, help_text="The project's id.")
    project_name = models.CharField(max_length=200, blank=True, default="")
    run = models.ForeignKey(
        "pipeline.Run",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        db_constraint=False,
        related_name="+",
    )
    run_ref = models.BigIntegerField(null=True, blank=True, help_text="The run's id, kept.")
    step_key = models.CharField(max_length=200, blank=True, default="")
    role = models.CharField(max_length=32, blank=True, default="")
    provider = models.CharField(max_length=64)
    model = models.CharField(max_length=200)
    tokens_in = models.BigIntegerField(default=0)
    tokens_out = models.BigIntegerField(default=0)
    cost_usd = models.DecimalField(max_digits=12, decimal_places=6, default=Decimal("0"))
    created_at = models.DateTimeField()
    # One per attempt to store a call: storing it again (after a lost connection) adds nothing.
    call_key = models.UUIDField(null=True, blank=True, unique=True, editable=False)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = "spend entry"
        verbose_name_plural = "spend ledger"
        indexes = [
            models.Index(fields=["user_ref", "created_at"], name="spendentry_user_time"),
            models.Index(fields=["project_ref", "-id"], name="spendentry_project_ref"),
            models.Index(fields=["created_at"], name="spendentry_time"),
        ]

    def __str__(self) -> str:
        return f"{self.provider}:{self.model} ${self.cost_usd} (run {self.run_ref})"


class SpendWindow(models.Model):
    """A user's tally against the daily cap (see the module docstring).

    ``buckets``: ``{"<ten-minute bucket since the epoch>": usd}`` for the last day.
    ``reservations``: ``{"<id>": {"usd", "until" (epoch seconds), "run", "step"}}``; one
    past its ``until`` counts for nothing (the call's holder died) and is pruned.
    """

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        primary_key=True,
        related_name="spend_window",
    )
    buckets = models.JSONField(default=dict, blank=True)
    reservations = models.JSONField(default=dict, blank=True)
    updated_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"spend window of user {self.pk}"
