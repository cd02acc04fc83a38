"""Admin for runs and steps: filterable lists, and cancel / resume / retry-step actions.

The actions call the same services as the REST API (``pipeline.services``), so a run
cancelled here is revoked and announced exactly like one cancelled by its owner. Rows are
read-only: runs start from the API or the CLI and change only through their services.
"""

from collections.abc import Callable
from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html, format_html_join

from common.errors import ApplicationError

from .models import Event, PlanTask, Run, RunDelivery, Step


def _apply(
    request: HttpRequest,
    objects: QuerySet[Any],
    service: Callable[[Any], Any],
    verb: str,
) -> None:
    """Call ``service`` on each object; report successes and refusals (e.g. 409s) per row."""
    done, refused = [], []
    for obj in objects:
        try:
            service(obj)
        except ApplicationError as exc:
            refused.append(f"{obj}: {exc.detail}")
        else:
            done.append(str(obj.pk))
    if done:
        messages.success(request, f"{verb}: {', '.join(done)}.")
    for line in refused:
        messages.warning(request, f"Not {verb.lower()}: {line}")


class StepInline(admin.TabularInline):
    """A run's steps, read-only, each linking to its own page."""

    model = Step
    extra = 0
    can_delete = False
    show_change_link = True
    fields = (
        "role",
        "key",
        "round",
        "attempt",
        "status",
        "model",
        "tokens_in",
        "tokens_out",
        "cost_usd",
        "latency_ms",
        "started_at",
        "finished_at",
        "reused",
    )
    readonly_fields = fields
    ordering = ("id",)

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class PlanTaskInline(admin.TabularInline):
    """The planner's DAG, read-only."""

    model = PlanTask
    extra = 0
    can_delete = False
    fields = ("key", "title", "layer", "depends_on", "status")
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Run)
class RunAdmin(admin.ModelAdmin):
    """Runs, filterable by status and project; cancel and resume through the services."""

    list_display = (
        "id",
        "project",
        "created_by",
        "status",
        "error_code",
        "tokens_in",
        "tokens_out",
        "cost_usd",
        "created_at",
        "finished_at",
        "origin",
        "steps_link",
    )
    list_filter = ("status", ("project", admin.RelatedOnlyFieldListFilter), "created_at")
    search_fields = ("=id", "prompt", "project__name", "created_by__email")
    list_select_related = ("project", "created_by", "base_run", "forked_from")
    date_hierarchy = "created_at"
    inlines = [PlanTaskInline, StepInline]
    actions = ["cancel_runs", "resume_runs"]

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return [f.name for f in Run._meta.fields] + ["origin", "steps_link", "events_link"]

    @admin.display(description="origin")
    def origin(self, obj: Run) -> str:
        """Where the run came from: a follow-up of its base run, a fork of its source run."""
        parts = []
        if obj.base_run_id is not None:
            url = reverse("admin:pipeline_run_change", args=[obj.base_run_id])
            parts.append(format_html('follow-up of <a href="{}">run {}</a>', url, obj.base_run_id))
        if obj.forked_from_id is not None:
            url = reverse("admin:pipeline_run_change", args=[obj.forked_from_id])
            point = f" from {obj.fork_point}" if obj.fork_point else ""
            parts.append(
                format_html('fork of <a href="{}">run {}</a>{}', url, obj.forked_from_id, point)
            )
        return format_html_join("; ", "{}", ((part,) for part in parts)) if parts else "-"

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    @admin.display(description="steps")
    def steps_link(self, obj: Run) -> str:
        url = reverse("admin:pipeline_step_changelist") + f"?run__id__exact={obj.pk}"
        return format_html('<a href="{}">steps</a>', url)

    @admin.display(description="events")
    def events_link(self, obj: Run) -> str:
        url = reverse("admin:pipeline_event_changelist") + f"?run__id__exact={obj.pk}"
        return format_html('<a href="{}">events</a>', url)

    @admin.action(description="Cancel the selected runs")
    def cancel_runs(self, request: HttpRequest, queryset: QuerySet[Run]) -> None:
        from .services import run_cancel

        _apply(request, queryset, lambda run: run_cancel(run=run), "Cancelled")

    @admin.action(description="Resume the selected runs (failed, cancelled or stalled)")
    def resume_runs(self, request: HttpRequest, queryset: QuerySet[Run]) -> None:
        from .services import run_resume

        _apply(request, queryset, lambda run: run_resume(run=run), "Resumed")


@admin.register(Step)
class StepAdmin(admin.ModelAdmin):
    """Steps, filterable by role and status (and by run through the run's link)."""

    list_display = (
        "id",
        "run",
        "role",
        "key",
        "round",
        "attempt",
        "status",
        "provider",
        "model",
        "tokens_in",
        "tokens_out",
        "cost_usd",
        "latency_ms",
        "started_at",
        "finished_at",
        "reused",
    )
    list_filter = ("role", "status", "reused")
    search_fields = ("=run__id", "key", "model")
    list_select_related = ("run",)
    actions = ["retry_steps"]

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return [f.name for f in Step._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    @admin.action(description="Retry the selected steps (failed or skipped)")
    def retry_steps(self, request: HttpRequest, queryset: QuerySet[Step]) -> None:
        from .services import step_retry

        _apply(request, queryset.select_related("run"), lambda s: step_retry(step=s), "Retried")


@admin.register(Event)
class EventAdmin(admin.ModelAdmin):
    """Progress events, read-only (the table clients replay from)."""

    list_display = ("run", "seq", "type", "at")
    list_filter = ("type",)
    search_fields = ("=run__id",)
    list_select_related = ("run",)

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return [f.name for f in Event._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(RunDelivery)
class RunDeliveryAdmin(admin.ModelAdmin):
    """Deliveries of runs to their forge, read-only (asked for through the API or the run
    page)."""

    list_display = ("run", "branch", "state", "pull_request_number", "attempt", "updated_at")
    list_filter = ("state", "trigger")
    search_fields = ("=run__id", "branch")
    list_select_related = ("run",)

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return [f.name for f in RunDelivery._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
