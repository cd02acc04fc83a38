"""Pipeline state: runs, their steps, the plan's tasks and the progress events.

State lives here, never only in the Celery canvas: the canvas can always be rebuilt
from these rows (resume), and every step is claimed with a conditional update.
"""

from decimal import Decimal

from django.conf import settings
from django.db import models


class Run(models.Model):
    """One generation of a project from a prompt."""

    class Status(models.TextChoices):
        QUEUED = "queued"
        DESIGNING = "designing"
        AWAITING_APPROVAL = "awaiting_approval"
        RUNNING = "running"
        INTEGRATING = "integrating"
        COMPLETED = "completed"
        FAILED = "failed"
        CANCELLED = "cancelled"

    FINISHED = (Status.COMPLETED, Status.FAILED, Status.CANCELLED)
    # Statuses in which the canvas is (or should be) moving.
    ACTIVE = (Status.QUEUED, Status.DESIGNING, Status.RUNNING, Status.INTEGRATING)

    project = models.ForeignKey("projects.Project", on_delete=models.CASCADE, related_name="runs")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="runs"
    )
    prompt = models.TextField()
    status = models.CharField(max_length=32, choices=Status.choices, default=Status.QUEUED)
    options = models.JSONField(default=dict, blank=True)
    budget_usd = models.DecimalField(max_digits=12, decimal_places=6, null=True, blank=True)
    tokens_in = models.BigIntegerField(default=0)
    tokens_out = models.BigIntegerField(default=0)
    cost_usd = models.DecimalField(max_digits=12, decimal_places=6, default=Decimal("0"))
    error = models.TextField(blank=True, default="")
    error_code = models.CharField(max_length=64, blank=True, default="")
    design = models.JSONField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    next_event_seq = models.PositiveIntegerField(default=1)
    # Set by POST /runs/{id}/approve; the approval gate lets the canvas past design only then.
    approved_at = models.DateTimeField(null=True, blank=True)
    # Wall-time bound of the current attempt (set on start and on every resume).
    deadline_at = models.DateTimeField(null=True, blank=True)
    # {"design": {"started_at": iso, "completed_at": iso}, "coding": {...}, ...}
    stages = models.JSONField(default=dict, blank=True)
    budget_warned = models.BooleanField(default=False)
    resume_count = models.PositiveIntegerField(default=0)
    # X-Request-ID of the request that started the run: every task of the run logs it,
    # however the task was queued (the start, an approval, a resume, the reaper).
    request_id = models.CharField(max_length=128, blank=True, default="")

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["project", "-created_at"]),
            models.Index(fields=["status", "heartbeat_at"]),
        ]

    def __str__(self) -> str:
        return f"Run {self.pk} ({self.status})"

    @property
    def is_finished(self) -> bool:
        return self.status in self.FINISHED


class WorkStatus(models.TextChoices):
    """Where a plan task or a step stands (the API's step statuses)."""

    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    SKIPPED = "skipped"


class PlanTask(models.Model):
    """One task of the planner's DAG."""

    Status = WorkStatus

    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="tasks")
    key = models.CharField(max_length=64)
    title = models.CharField(max_length=300)
    spec = models.TextField(blank=True, default="")
    files = models.JSONField(default=list, blank=True)
    depends_on = models.JSONField(default=list, blank=True)
    layer = models.PositiveIntegerField(default=0)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    # The task's accepted output: {"files": {path: content}, "attempt": n, "verdict": {...}}.
    result = models.JSONField(null=True, blank=True)

    class Meta:
        ordering = ["layer", "id"]
        constraints = [
            models.UniqueConstraint(fields=["run", "key"], name="plantask_run_key_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.key}: {self.title}"


class Step(models.Model):
    """One agent action, claimed once and stored under its idempotency key."""

    Status = WorkStatus

    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="steps")
    role = models.CharField(max_length=32)
    key = models.CharField(max_length=200, help_text="Idempotency key, unique within the run.")
    plan_task = models.ForeignKey(
        PlanTask, on_delete=models.CASCADE, null=True, blank=True, related_name="steps"
    )
    round = models.PositiveIntegerField(default=0)
    attempt = models.PositiveIntegerField(default=1)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    provider = models.CharField(max_length=64, blank=True, default="")
    model = models.CharField(max_length=200, blank=True, default="")
    tokens_in = models.BigIntegerField(default=0)
    tokens_out = models.BigIntegerField(default=0)
    cost_usd = models.DecimalField(max_digits=12, decimal_places=6, default=Decimal("0"))
    latency_ms = models.PositiveIntegerField(default=0)
    llm_calls = models.PositiveIntegerField(default=0)
    input = models.JSONField(default=dict, blank=True)
    output = models.JSONField(null=True, blank=True)
    error = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(fields=["run", "key"], name="step_run_key_unique"),
        ]
        indexes = [models.Index(fields=["run", "status"])]

    def __str__(self) -> str:
        return f"{self.role} {self.key} ({self.status})"


class Event(models.Model):
    """A progress event; ``seq`` orders a run's events and lets clients resume from one."""

    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="events")
    seq = models.PositiveIntegerField()
    type = models.CharField(max_length=64)
    payload = models.JSONField(default=dict, blank=True)
    at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["run", "seq"]
        constraints = [
            models.UniqueConstraint(fields=["run", "seq"], name="event_run_seq_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.run_id}#{self.seq} {self.type}"
