"""The Django admin, behind the same MFA step as the dashboard."""

from typing import Any

from django.contrib import admin
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django_otp import user_has_device


class MFAAdminSite(admin.AdminSite):
    """Admin for active staff; staff who have MFA on must have passed it in this session.

    The admin's own login form checks the password only, so it is not used: signing in
    happens on the dashboard (``/``), which has the MFA step, and the session then opens
    the admin too.
    """

    def has_permission(self, request: HttpRequest) -> bool:
        if not super().has_permission(request):
            return False
        user: Any = request.user
        is_verified = getattr(user, "is_verified", None)  # set by django_otp's OTPMiddleware
        return not user_has_device(user) or bool(is_verified is not None and is_verified())

    def login(self, request: HttpRequest, extra_context: Any = None) -> HttpResponse:
        return HttpResponseRedirect("/")
