from django.contrib import admin, messages
from django.contrib.auth.admin import UserAdmin as BaseUserAdmin
from django.db.models import QuerySet
from django.http import HttpRequest

from . import services
from .models import User, UserSession


@admin.register(User)
class UserAdmin(BaseUserAdmin):
    list_display = ("email", "username", "is_active", "is_staff", "date_joined")
    search_fields = ("email", "username")
    ordering = ("email",)
    actions = ["deactivate"]

    @admin.action(description="Deactivate (and sign out everywhere)")
    def deactivate(self, request: HttpRequest, queryset: QuerySet[User]) -> None:
        for user in queryset:
            services.user_deactivate(user=user)
        messages.success(request, f"{queryset.count()} user(s) deactivated.")


@admin.register(UserSession)
class UserSessionAdmin(admin.ModelAdmin):
    list_display = ("id", "user", "device", "ip", "created_at", "last_seen_at", "revoked_at")
    list_filter = ("revoked_reason",)
    search_fields = ("user__email", "ip")
    readonly_fields = [f.name for f in UserSession._meta.fields]
    actions = ["revoke"]

    @admin.action(description="Revoke (sign the device out)")
    def revoke(self, request: HttpRequest, queryset: QuerySet[UserSession]) -> None:
        for session in queryset:
            services.session_revoke(session=session, reason="admin")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False
