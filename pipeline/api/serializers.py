"""Input and output serializers of the run endpoints."""

from typing import Any

from rest_framework import serializers

from common.logging import redact_secrets

from ..models import Run, Step
from ..selectors import run_rounds, run_tasks


class GenerateInputSerializer(serializers.Serializer):
    prompt = serializers.CharField(allow_blank=False, trim_whitespace=True)
    options = serializers.DictField(required=False, allow_null=True, default=None)


class GenerateOutputSerializer(serializers.Serializer):
    run_id = serializers.IntegerField()
    status = serializers.CharField()
    events_url = serializers.CharField()


class RunListSerializer(serializers.ModelSerializer):
    events_url = serializers.SerializerMethodField()

    class Meta:
        model = Run
        fields = [
            "id",
            "project",
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

    class Meta(RunListSerializer.Meta):
        fields = [
            *RunListSerializer.Meta.fields,
            "stages",
            "rounds",
            "tasks",
            "design",
            "approved_at",
            "resume_count",
            "steps_url",
            "files_url",
        ]

    def get_rounds(self, run: Run) -> list[dict[str, Any]]:
        return run_rounds(run=run)

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
        ]

    def get_task(self, step: Step) -> str | None:
        return step.plan_task.key if step.plan_task_id and step.plan_task else None


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
