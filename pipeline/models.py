"""Pipeline state: runs, their steps, the plan's tasks and the progress events.

State lives here, never only in the Celery canvas: the canvas can always be rebuilt
from these rows (resume), and every step is claimed with a conditional update.
"""

from decimal import Decimal

from django.conf import settings
from django.db import models


class Run(models.Model):
    """One generation of a project from a prompt, or one import of a repository's tree.

    A ``generate`` run goes through design, coding and integration; an ``import`` run
    fetches a tree from git or an archive, stores it as its artifacts and runs the
    repository's own tests once (the baseline): it is the base of the project's next run.
    """

    class Kind(models.TextChoices):
        GENERATE = "generate"
        IMPORT = "import"

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
    kind = models.CharField(max_length=16, choices=Kind.choices, default=Kind.GENERATE)
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
    # The worker process that stored the run's latest step and is to send what follows it
    # (``pipeline.services.liveness``); cleared when anything else queues the run's work. A run
    # quiet past the stale bound whose storer died before it sent that is resumed (the reaper).
    stored_by = models.CharField(max_length=100, blank=True, default="", db_default="")
    # X-Request-ID of the request that started the run: every task of the run logs it,
    # however the task was queued (the start, an approval, a resume, the reaper).
    request_id = models.CharField(max_length=128, blank=True, default="")
    # W3C traceparent of the run's span (``pipeline.tracing``; empty while tracing is off):
    # tasks in any process continue the run's trace from it, across resumes and the reaper.
    traceparent = models.CharField(max_length=55, blank=True, default="")
    # Span id (hex) of the request span that created the run: the run span's parent.
    trace_parent_id = models.CharField(max_length=16, blank=True, default="")

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


class RunDelivery(models.Model):
    """A run delivered to its project's forge: a branch holding one commit for the run, and
    (when asked) the pull request from it.

    One row per run. ``attempt`` grows with every request: the delivery task carries the
    attempt it was queued for and claims the row only for it, so a request made again (or
    a task delivered twice) never runs two deliveries side by side. The push itself is
    idempotent: the commit carries the run's delivery key, and a branch whose head already
    carries it is left alone; the pull request is found by its head branch and updated.
    """

    class State(models.TextChoices):
        WAITING = "waiting"  # asked for at generate time: goes once the run completes
        QUEUED = "queued"
        PUSHING = "pushing"
        DELIVERED = "delivered"
        FAILED = "failed"

    IN_FLIGHT = (State.QUEUED, State.PUSHING)

    class Trigger(models.TextChoices):
        REQUEST = "request"  # POST /runs/{id}/deliver, the run page, manage.py deliver
        GENERATE = "generate"  # deliver: {...} of POST /projects/{id}/generate
        REVIEW = "review"  # a follow-up started by a review comment on the pull request

    run = models.OneToOneField(Run, on_delete=models.CASCADE, related_name="delivery")
    branch = models.CharField(max_length=200)
    pull_request = models.BooleanField(default=True, help_text="Open or update one.")
    trigger = models.CharField(max_length=16, choices=Trigger.choices, default=Trigger.REQUEST)
    state = models.CharField(max_length=16, choices=State.choices, default=State.QUEUED)
    attempt = models.PositiveIntegerField(default=1)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True
    )
    commit = models.CharField(max_length=64, blank=True, default="")
    root_commit = models.CharField(max_length=64, blank=True, default="")
    pull_request_number = models.PositiveIntegerField(null=True, blank=True)
    pull_request_url = models.CharField(max_length=500, blank=True, default="")
    pull_request_state = models.CharField(max_length=32, blank=True, default="")
    error = models.TextField(blank=True, default="")
    error_code = models.CharField(max_length=64, blank=True, default="")
    requested_at = models.DateTimeField()
    updated_at = models.DateTimeField(auto_now=True)
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=models.Q(
                    state__in=["waiting", "queued", "pushing", "delivered", "failed"]
                ),
                name="rundelivery_state_known",
            ),
            models.CheckConstraint(condition=~models.Q(branch=""), name="rundelivery_branch"),
        ]
        indexes = [
            models.Index(fields=["branch", "pull_request_number"]),
            models.Index(fields=["state", "updated_at"]),
        ]

    def __str__(self) -> str:
        return f"run {self.run_id} -> {self.branch} ({self.state})"


class ReviewHook(models.Model):
    """A forge webhook delivery that asked for a follow-up run (a review comment on one of
    the project's pull requests). Its delivery id is unique per project and forge, and the
    row is written in the transaction that starts the run: a replay starts nothing."""

    project = models.ForeignKey(
        "projects.Project", on_delete=models.CASCADE, related_name="review_hooks"
    )
    kind = models.CharField(max_length=10)
    delivery_id = models.CharField(max_length=200)
    pull_request_number = models.PositiveIntegerField()
    comment_id = models.CharField(max_length=100, blank=True, default="")
    author = models.CharField(max_length=200, blank=True, default="")
    run = models.ForeignKey(
        Run, on_delete=models.SET_NULL, null=True, blank=True, related_name="review_hooks"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["project", "kind", "delivery_id"], name="reviewhook_delivery_unique"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.kind}:{self.delivery_id} -> run {self.run_id}"


class RunImport(models.Model):
    """Where an import run's tree came from, what it held, and its baseline.

    One per import run. ``url``/``ref``/``commit`` name a git source (``commit`` is the
    resolved commit a delivery builds on); ``archive_name`` an uploaded archive, whose bytes
    wait under ``archive_key`` in the artifacts storage until the import read them (then the
    key is emptied and the upload deleted). ``binary`` lists the paths never shown to a model;
    ``executable`` and ``symlinks`` (path -> in-tree target, not stored as artifacts) are what
    a delivery needs to rebuild the tree exactly. The baseline is the repository's own test
    suite, run once at import: ``baseline_status`` with its ``baseline_command`` (or the
    reason it was not run), the counts, and one ``BaselineTest`` row per test.
    """

    class Source(models.TextChoices):
        GIT = "git"
        ARCHIVE = "archive"

    class Baseline(models.TextChoices):
        PENDING = "pending"
        PASSED = "passed"
        FAILED = "failed"
        NOT_RUN = "not_run"

    run = models.OneToOneField(
        Run, on_delete=models.CASCADE, primary_key=True, related_name="import_source"
    )
    source = models.CharField(max_length=16, choices=Source.choices)
    url = models.CharField(max_length=2000, blank=True, default="")
    ref = models.CharField(max_length=255, blank=True, default="")
    commit = models.CharField(max_length=64, blank=True, default="")
    submodules = models.BooleanField(default=False)
    archive_name = models.CharField(max_length=255, blank=True, default="")
    archive_key = models.CharField(max_length=200, blank=True, default="")
    archive_bytes = models.PositiveBigIntegerField(default=0)
    files = models.PositiveIntegerField(default=0)
    bytes = models.PositiveBigIntegerField(default=0)
    binary = models.JSONField(default=list, blank=True)
    executable = models.JSONField(default=list, blank=True)
    symlinks = models.JSONField(default=dict, blank=True)
    skipped = models.JSONField(default=list, blank=True)
    baseline_status = models.CharField(
        max_length=16, choices=Baseline.choices, default=Baseline.PENDING
    )
    baseline_command = models.CharField(max_length=500, blank=True, default="")
    baseline_reason = models.TextField(blank=True, default="")
    # {"passed": n, "failed": n, "errors": n, "skipped": n}
    baseline_counts = models.JSONField(default=dict, blank=True)
    imported_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=models.Q(source__in=["git", "archive"]), name="runimport_source_known"
            ),
        ]

    def __str__(self) -> str:
        where = self.url or self.archive_name
        return f"import of {where} (run {self.run_id})"


class BaselineTest(models.Model):
    """One test of an imported repository's own suite and how it did at import."""

    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="baseline_tests")
    test_id = models.CharField(max_length=1000)
    # passed, failed, error, skipped, xfailed, xpassed
    outcome = models.CharField(max_length=16)

    class Meta:
        ordering = ["run", "test_id"]
        constraints = [
            models.UniqueConstraint(fields=["run", "test_id"], name="baselinetest_run_test_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.test_id}: {self.outcome}"
