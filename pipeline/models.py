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
        # POST /runs/{id}/pause: steps in flight finish, no new one starts until resumed.
        PAUSED = "paused"

    FINISHED = (Status.COMPLETED, Status.FAILED, Status.CANCELLED)
    # Statuses in which the canvas is (or should be) moving.
    ACTIVE = (Status.QUEUED, Status.DESIGNING, Status.RUNNING, Status.INTEGRATING)
    # Not finished: moving, or held (at the approval gate, or paused by its owner).
    UNFINISHED = (*ACTIVE, Status.AWAITING_APPROVAL, Status.PAUSED)

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
    # Wall-time bound of the current attempt (set on start and on every resume; a resume
    # after a pause moves it on by the time spent paused).
    deadline_at = models.DateTimeField(null=True, blank=True)
    # Set while the run is paused (POST /runs/{id}/pause); ``paused_seconds`` adds up the
    # time it spent paused, which neither the deadline nor the forecast counts.
    paused_at = models.DateTimeField(null=True, blank=True)
    paused_seconds = models.FloatField(default=0.0)
    # {"design": {"started_at": iso, "completed_at": iso}, "coding": {...}, ...}
    stages = models.JSONField(default=dict, blank=True)
    budget_warned = models.BooleanField(default=False)
    resume_count = models.PositiveIntegerField(default=0)
    # A follow-up run plans a change to this run's tree (null: the run started from nothing).
    base_run = models.ForeignKey(
        "self", on_delete=models.SET_NULL, null=True, blank=True, related_name="follow_ups"
    )
    # A fork took over this run's finished steps up to ``fork_point`` as reused rows.
    forked_from = models.ForeignKey(
        "self", on_delete=models.SET_NULL, null=True, blank=True, related_name="forks"
    )
    # Where the fork went on from: a stage (design, orchestrate, coding, integrate) or a step key.
    fork_point = models.CharField(max_length=200, blank=True, default="")

    # Set once, by whichever task saw the last plan task green: integration is queued.
    integration_claimed_at = models.DateTimeField(null=True, blank=True)
    # X-Request-ID of the request that started the run: every task of the run logs it,
    # however the task was queued (the start, an approval, a resume, the reaper).
    request_id = models.CharField(max_length=128, blank=True, default="")

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["project", "-created_at"]),
            models.Index(fields=["status", "heartbeat_at"]),
            # The cost forecast's history: the latest completed runs (pipeline.forecast).
            models.Index(fields=["status", "-finished_at"], name="run_status_finished"),
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
    # Set once, by whichever task saw the last of its dependencies green: it is queued.
    dispatched_at = models.DateTimeField(null=True, blank=True)

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
    # A reused step is a copy of a finished step of another run (a fork's source): it made no
    # model call and costs nothing here. ``reused`` stays true even when the origin is deleted.
    reused = models.BooleanField(default=False)
    reused_from = models.ForeignKey(
        "self", on_delete=models.SET_NULL, null=True, blank=True, related_name="reuses"
    )

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(fields=["run", "key"], name="step_run_key_unique"),
            models.CheckConstraint(
                condition=models.Q(reused=True) | models.Q(reused_from__isnull=True),
                name="step_reused_from_only_when_reused",
            ),
        ]
        indexes = [
            models.Index(fields=["run", "status"]),
            # The reaper's look for running steps whose holder stopped beating.
            models.Index(
                fields=["heartbeat_at"],
                condition=models.Q(status="running"),
                name="step_running_heartbeat",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.role} {self.key} ({self.status})"


class TaskMessage(models.Model):
    """A person's message to a plan task (POST /runs/{id}/tasks/{key}/messages).

    It joins the context of the task's next coder attempt: the first coder step prepared
    after it was sent takes it (``step``), and every later preparation of that same step (a
    takeover, a retry) sees it again, so the message reaches exactly one attempt.
    """

    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="task_messages")
    plan_task = models.ForeignKey(PlanTask, on_delete=models.CASCADE, related_name="messages")
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+"
    )
    text = models.TextField()
    created_at = models.DateTimeField(auto_now_add=True)
    # The coder step whose prompt carried the message (null: waiting for the next attempt).
    step = models.ForeignKey(
        "Step", on_delete=models.SET_NULL, null=True, blank=True, related_name="messages"
    )

    class Meta:
        ordering = ["id"]
        indexes = [models.Index(fields=["plan_task", "step"])]

    def __str__(self) -> str:
        return f"message to {self.plan_task_id} ({self.text[:40]})"


class StepCall(models.Model):
    """One paid model call of a step: its answer and what it cost, stored on arrival.

    The answer and its usage land in one transaction the moment the call returns, so a
    worker killed afterwards costs nothing more: the step, taken over or resumed, replays
    its calls in ``ordinal`` order instead of asking the model again. Calls of a step that
    failed are ``retired``: running that step again means asking anew.
    """

    step = models.ForeignKey(Step, on_delete=models.CASCADE, related_name="calls")
    ordinal = models.PositiveIntegerField(help_text="Order of the call within its step.")
    provider = models.CharField(max_length=64)
    model = models.CharField(max_length=200)
    text = models.TextField()
    parsed = models.JSONField(null=True, blank=True)
    tokens_in = models.BigIntegerField(default=0)
    tokens_out = models.BigIntegerField(default=0)
    cost_usd = models.DecimalField(max_digits=12, decimal_places=6, default=Decimal("0"))
    latency_ms = models.PositiveIntegerField(default=0)
    retired = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["step", "ordinal"]
        constraints = [
            models.UniqueConstraint(
                fields=["step", "ordinal"], name="stepcall_step_ordinal_unique"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.step_id}#{self.ordinal} {self.provider}:{self.model}"


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
