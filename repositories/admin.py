from django.contrib import admin
from django.http import HttpRequest

from .models import ForgeConnection


@admin.register(ForgeConnection)
class ForgeConnectionAdmin(admin.ModelAdmin):
    """Forge connections, read-only and without their secrets (set through the API)."""

    list_display = ["project", "kind", "repository", "api_url", "updated_at"]
    list_filter = ["kind"]
    search_fields = ["repository", "project__name"]
    fields = ("project", "kind", "api_url", "repository", "remote_url", "created_at", "updated_at")
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False
