"""The whole spend ledger in the admin, read-only: nothing here adds, changes or deletes a row.

Rows name their user, project and run by the ids copied on them (``*_ref``), so the history
reads the same after a project, a run or an account is deleted.
"""

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from .models import SpendEntry, SpendWindow


class _ReadOnly(admin.ModelAdmin):
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(SpendEntry)
class SpendEntryAdmin(_ReadOnly):
    """Every paid model call, newest first; filter by provider, model and day."""

    list_display = (
        "created_at",
        "user_email",
        "user_ref",
        "project_name",
        "project_ref",
        "run_ref",
        "role",
        "provider",
        "model",
        "tokens_in",
        "tokens_out",
        "cost_usd",
    )
    list_filter = ("provider", "model", "created_at")
    search_fields = ("user_email", "project_name", "=user_ref", "=project_ref", "=run_ref")
    date_hierarchy = "created_at"
    show_full_result_count = False
    fields = (
        "created_at",
        "user_ref",
        "user_email",
        "user",
        "project_ref",
        "project_name",
        "project",
        "run_ref",
        "run",
        "step_key",
        "role",
        "provider",
        "model",
        "tokens_in",
        "tokens_out",
        "cost_usd",
        "call_key",
    )
    readonly_fields = fields


@admin.register(SpendWindow)
class SpendWindowAdmin(_ReadOnly):
    """Each user's tally against the daily cap: ten-minute buckets and calls in flight."""

    list_display = ("user", "updated_at")
    search_fields = ("user__email",)
    list_select_related = ("user",)
    fields = ("user", "buckets", "reservations", "updated_at")
    readonly_fields = fields
