"""Input and output serializers of the run endpoints."""

from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from common.logging import redact_secrets
from common.serializers import FastOutputMixin
from projects.api.files_views import TreeDiffOutputSerializer

from ..delivery.api import RunDeliveryOutputSerializer
from ..delivery.selectors import run_delivery_view
from ..models import Run, Step
from ..regressions import run_regressions
from ..selectors import (
    run_base_changes,
    run_design_and_tester_rows,
    run_import_origin,
    run_import_summary,
    run_rounds,
    run_tasks,
    task_messages_for_run,
)
from ..tracing import trace_id_of


class GenerateDeliverSerializer(serializers.Serializer):
    """``deliver`` of generate: deliver the run to the project's forge once it completes."""

    branch = serializers.CharField(
        required=False,
        allow_blank=True,
        max_length=200,
        help_text="The branch to push to (default: REPOSITORY_DELIVERY_BRANCH_PREFIX + run id).",
    )
    pull_request = serializers.BooleanField(
        required=False, default=True, help_text="Open a pull request from the branch."
    )


class GenerateInputSerializer(serializers.Serializer):
    prompt = serializers.CharField(allow_blank=False, trim_whitespace=True)
    options = serializers.DictField(required=False, allow_null=True, default=None)
    base_run = serializers.IntegerField(
        required=False,
        allow_null=True,
        min_value=1,
        help_text="The completed run whose tree this run changes. Left out: the project's "
        "latest completed run; null: a fresh start.",
    )
    deliver = GenerateDeliverSerializer(
        required=False,
        allow_null=True,
        default=None,
        help_text="Deliver the run (a branch and a pull request) when it completes; the "
        "project needs a forge connection.",
    )


class ForkInputSerializer(serializers.Serializer):
    """``{"from": stage or step key, "options": {...}}`` (``from`` is a Python keyword)."""

    options = serializers.DictField(
        required=False,
        allow_null=True,
        default=None,
        help_text="Options of the new run, over the source run's (validated like generate's).",
    )

    def get_fields(self) -> dict[str, serializers.Field]:
        fields = super().get_fields()
        fields["from"] = serializers.CharField(
            max_length=200,
            trim_whitespace=True,
            help_text="Where the new run goes on from: design, orchestrate, coding, "
            "integrate, or a step key of the source run; the steps before it are reused.",
        )
        return fields


class BaseChangesSerializer(serializers.Serializer):
    base_run = serializers.IntegerField()
    added = serializers.ListField(child=serializers.CharField())
    removed = serializers.ListField(child=serializers.CharField())
    changed = serializers.ListField(child=serializers.CharField())
    unchanged = serializers.IntegerField()
    diff_url = serializers.CharField(help_text="The full diff (GET /projects/{id}/diff).")


class BaselineSummarySerializer(serializers.Serializer):
    status = serializers.CharField(help_text="pending, passed, failed or not_run.")
    command = serializers.CharField(help_text="How the tests ran ('' when not run).")
    reason = serializers.CharField(help_text="Why this command, or why the tests did not run.")
    counts = serializers.DictField(child=serializers.IntegerField())


class ImportSourceSerializer(serializers.Serializer):
    run = serializers.IntegerField(help_text="The import run.")
    # Popped from the class by DRF's metaclass: Field.source stays.
    source = serializers.CharField(help_text="git or archive.")  # type: ignore[assignment]
    url = serializers.CharField()
    ref = serializers.CharField(help_text="What was asked for ('' for the remote's HEAD).")
    commit = serializers.CharField(help_text="The commit imported (git); a delivery's base.")
    submodules = serializers.BooleanField()
    archive_name = serializers.CharField()
    archive_bytes = serializers.IntegerField()
    files = serializers.IntegerField()
    bytes = serializers.IntegerField()
    binary = serializers.ListField(
        child=serializers.CharField(), help_text="Paths kept as blobs, never shown to a model."
    )
    executable = serializers.ListField(child=serializers.CharField())
    symlinks = serializers.DictField(
        child=serializers.CharField(), help_text="In-tree symbolic links: path -> target."
    )
    skipped = serializers.ListField(child=serializers.DictField())
    imported_at = serializers.DateTimeField(allow_null=True)
    baseline = BaselineSummarySerializer()


class GenerateOutputSerializer(serializers.Serializer):
    run_id = serializers.IntegerField()
    status = serializers.CharField()
    events_url = serializers.CharField()


class RunListSerializer(FastOutputMixin, serializers.ModelSerializer):
    events_url = serializers.SerializerMethodField()

    class Meta:
        model = Run
        fields = [
            "id",
            "project",
            "kind",
            "status",
            "error",
            "error_code",
            "prompt",
            "options",
            "created_at",
            "started_at",
            "finished_at",
            "tokens_in",
            "tokens_out",
            "cost_usd",
            "budget_usd",
            "base_run",
            "forked_from",
            "fork_point",
            "events_url",
        ]

    def get_events_url(self, run: Run) -> str:
        return f"/runs/{run.id}/events"


class RunDetailSerializer(RunListSerializer):
    stages = serializers.JSONField()
    rounds = serializers.SerializerMethodField()
    tasks = serializers.SerializerMethodField()
    design = serializers.SerializerMethodField()
    steps_url = serializers.SerializerMethodField()
    files_url = serializers.SerializerMethodField()
    base_changes = serializers.SerializerMethodField(
        help_text="A follow-up's changes to its base run's tree (null for a fresh run or "
        "while it has no files)."
    )
    trace_id = serializers.SerializerMethodField(
        help_text="The run's OpenTelemetry trace id (hex; null when tracing was off)."
    )
    delivery = serializers.SerializerMethodField(
        help_text="The run's delivery to the project's forge (null: never asked for)."
    )
    regressions = serializers.SerializerMethodField(
        help_text="Tests that passed in the imported repository's baseline and fail in this "
        "run's latest checks (each task's latest tester, the latest integration suite)."
    )
    regressions_caught = serializers.SerializerMethodField(
        help_text="Every baseline test any check of this run caught failing, fixed since or not."
    )
    import_source = serializers.SerializerMethodField(
        help_text="The import this run's tree descends from (its own for an import run, else "
        "the one at the start of its chain of base runs); null when it started from nothing."
    )
    plan_edits = serializers.SerializerMethodField(
        help_text="Each edit of the plan at the approval gate: {by: {id, email}, at, changes}."
    )
    messages = serializers.SerializerMethodField(
        help_text="Messages to tasks: {id, task, text, at, step, attempt}; step and attempt "
        "name the coder attempt that read it (null: waiting for the next one)."
    )

    class Meta(RunListSerializer.Meta):
        fields = [
            *RunListSerializer.Meta.fields,
            "stages",
            "rounds",
            "tasks",
            "design",
            "approved_at",
            "resume_count",
            "paused_at",
            "paused_seconds",
            "plan_edits",
            "messages",
            "steps_url",
            "files_url",
            "base_changes",
            "trace_id",
            "delivery",
            "import_source",
            "regressions",
            "regressions_caught",
        ]

    def _step_rows(self, run: Run) -> tuple[list[Any], list[Any]]:
        # The design rounds and both regressions fields read them: one statement.
        rows: tuple[list[Any], list[Any]] | None = getattr(run, "_detail_step_rows", None)
        if rows is None:
            rows = run_design_and_tester_rows(run=run)
            run._detail_step_rows = rows  # type: ignore[attr-defined]
        return rows

    def _regressions(self, run: Run) -> dict[str, list[str]]:
        found: dict[str, list[str]] | None = getattr(run, "_regressions", None)
        if found is None:
            found = run_regressions(run=run, rows=self._step_rows(run)[1])
            run._regressions = found  # type: ignore[attr-defined]  # both fields read it
        return found

    @extend_schema_field(serializers.ListField(child=serializers.CharField()))
    def get_regressions(self, run: Run) -> list[str]:
        return self._regressions(run)["regressions"]

    @extend_schema_field(serializers.ListField(child=serializers.CharField()))
    def get_regressions_caught(self, run: Run) -> list[str]:
        return self._regressions(run)["regressions_caught"]

    @extend_schema_field(ImportSourceSerializer(allow_null=True))
    def get_import_source(self, run: Run) -> dict[str, Any] | None:
        return run_import_summary(record=run_import_origin(run=run))

    def get_trace_id(self, run: Run) -> str | None:
        return trace_id_of(run)

    @extend_schema_field(RunDeliveryOutputSerializer(allow_null=True))
    def get_delivery(self, run: Run) -> dict[str, Any] | None:
        return run_delivery_view(run)

    @extend_schema_field(BaseChangesSerializer(allow_null=True))
    def get_base_changes(self, run: Run) -> dict[str, Any] | None:
        return run_base_changes(run=run)

    def get_plan_edits(self, run: Run) -> list[dict[str, Any]]:
        return list((run.design or {}).get("edits") or [])

    def get_messages(self, run: Run) -> list[dict[str, Any]]:
        return task_messages_for_run(run=run)

    def get_rounds(self, run: Run) -> list[dict[str, Any]]:
        return run_rounds(run=run, rows=self._step_rows(run)[0])

    def get_tasks(self, run: Run) -> list[dict[str, Any]]:
        return run_tasks(run=run)

    def get_design(self, run: Run) -> dict[str, Any] | None:
        design = run.design or None
        if design is None:
            return None
        return {
            key: design.get(key)
            for key in ("approved_round", "summary", "package", "components", "tech_choices")
        }

    def get_steps_url(self, run: Run) -> str:
        return f"/runs/{run.id}/steps"

    def get_files_url(self, run: Run) -> str:
        return f"/projects/{run.project_id}/files?run={run.id}"


class StepSerializer(serializers.ModelSerializer):
    task = serializers.SerializerMethodField()
    reused = serializers.BooleanField(
        read_only=True, help_text="Copied from another run's finished step (no model call)."
    )

    class Meta:
        model = Step
        fields = [
            "id",
            "key",
            "role",
            "task",
            "round",
            "attempt",
            "status",
            "provider",
            "model",
            "tokens_in",
            "tokens_out",
            "cost_usd",
            "latency_ms",
            "llm_calls",
            "error",
            "created_at",
            "started_at",
            "finished_at",
            "reused",
            "reused_from",
        ]

    def get_task(self, step: Step) -> str | None:
        return step.plan_task.key if step.plan_task_id and step.plan_task else None


class CompareTasksSerializer(serializers.Serializer):
    total = serializers.IntegerField()
    succeeded = serializers.IntegerField()
    failed = serializers.IntegerField()


class CompareTestsSerializer(serializers.Serializer):
    suite = serializers.CharField(
        allow_null=True, help_text="The suite the figures come from: the last 'integration'."
    )
    mode = serializers.CharField(
        allow_null=True, help_text="'sandbox' when the tests ran, 'static review' when not."
    )
    passed = serializers.IntegerField(allow_null=True)
    failed = serializers.IntegerField(allow_null=True)
    # The declared field is popped from the class by DRF's metaclass: Serializer.errors stays.
    errors = serializers.IntegerField(allow_null=True)  # type: ignore[assignment]


class CompareLinesSerializer(serializers.Serializer):
    files = serializers.IntegerField()
    code = serializers.IntegerField(help_text="Non-blank lines of Python outside the tests.")
    tests = serializers.IntegerField(help_text="Non-blank lines of Python test modules.")
    total = serializers.IntegerField(help_text="Lines of every text file.")


class CompareRunSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    status = serializers.CharField()
    error_code = serializers.CharField()
    prompt = serializers.CharField()
    base_run = serializers.IntegerField(allow_null=True)
    forked_from = serializers.IntegerField(allow_null=True)
    created_at = serializers.DateTimeField()
    finished_at = serializers.DateTimeField(allow_null=True)
    wall_seconds = serializers.FloatField(
        allow_null=True, help_text="From creation to the end; null while the run goes on."
    )
    tokens_in = serializers.IntegerField()
    tokens_out = serializers.IntegerField()
    cost_usd = serializers.DecimalField(max_digits=12, decimal_places=6)
    steps = serializers.IntegerField()
    steps_reused = serializers.IntegerField()
    design_rounds = serializers.IntegerField()
    fix_attempts = serializers.IntegerField(help_text="Coder attempts after a task's first.")
    tasks = CompareTasksSerializer()
    tests = CompareTestsSerializer()
    lines = CompareLinesSerializer(allow_null=True)


class CompareOutputSerializer(serializers.Serializer):
    project = serializers.IntegerField()
    runs = CompareRunSerializer(many=True)
    diff = TreeDiffOutputSerializer(
        allow_null=True,
        help_text="Changes between the two runs of ?diff= (default: the first "
        "two); null when either has no files yet.",
    )


class StepDetailSerializer(StepSerializer):
    """A step with what it was given and what it produced, secrets redacted.

    ``output`` is the role's answer: the design (architect), objections (planner), files
    written (coder), the verdict and test report with ``mode`` "sandbox" or "static review"
    (tester), the merge report (integrator).
    """

    input = serializers.SerializerMethodField()
    output = serializers.SerializerMethodField()
    error = serializers.SerializerMethodField()

    class Meta(StepSerializer.Meta):
        fields = [*StepSerializer.Meta.fields, "input", "output"]

    def get_input(self, step: Step) -> dict[str, Any]:
        return redact_secrets(step.input or {})

    def get_output(self, step: Step) -> dict[str, Any] | None:
        return None if step.output is None else redact_secrets(step.output)

    def get_error(self, step: Step) -> str:
        return redact_secrets(step.error or "")
