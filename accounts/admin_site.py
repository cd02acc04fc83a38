"""The Django admin: active staff only, from a session that passed MFA."""

from typing import Any

from django.contrib import admin
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse

from . import services
from .cookie_sessions import cookie_session_live
from .errors import MfaRequired
from .page_access import session_mfa_passed


class MFAAdminSite(admin.AdminSite):
    """Admin for active staff with MFA on who passed it in this session
    (``services.staff_mfa_require``).

    The admin's own login form checks the password only, so it is not used: signing in
    happens on the dashboard (``/``), which has the MFA step, and the session then opens
    the admin too, while its device session is live (``cookie_session_live``). A staff
    member who is refused is told why and what to do.
    """

    def has_permission(self, request: HttpRequest) -> bool:
        if not super().has_permission(request) or not cookie_session_live(request):
            return False
        try:
            services.staff_mfa_require(
                user=request.user,  # type: ignore[arg-type]
                mfa_passed=session_mfa_passed(request),
            )
        except MfaRequired:
            return False
        return True

    def login(self, request: HttpRequest, extra_context: Any = None) -> HttpResponse:
        user: Any = request.user
        if not (user.is_authenticated and user.is_active and user.is_staff):
            return HttpResponseRedirect("/")
        try:
            services.staff_mfa_require(user=user, mfa_passed=session_mfa_passed(request))
        except MfaRequired as exc:
            context = {"message": exc.detail, "code": exc.code}
            return render(request, "accounts/admin_mfa_required.html", context, status=403)
        return HttpResponseRedirect(reverse("admin:index"))
