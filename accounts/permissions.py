"""DRF permissions of the accounts part."""

from typing import Any

from rest_framework.permissions import BasePermission
from rest_framework.request import Request

from . import services


def request_mfa_passed(request: Request) -> bool:
    """Whether the session or token authenticating ``request`` passed the MFA step.

    A JWT: its device session was marked at sign-in through ``/auth/mfa/verify`` (or when MFA
    was turned on in it). A dashboard cookie: django-otp verified a device in that session.
    """
    session = getattr(request, "auth_session", None)
    if session is not None:
        return session.mfa_verified_at is not None
    is_verified = getattr(request.user, "is_verified", None)  # set by django_otp's middleware
    return bool(is_verified is not None and is_verified())


class IsStaffWithMfa(BasePermission):
    """Active staff whose session or token passed MFA (``services.staff_mfa_require``).

    Anonymous callers get 401 and non-staff 403 as with DRF's ``IsAdminUser``; staff without
    MFA get 403 with ``mfa_setup_required`` or ``mfa_step_required`` and what to do.
    """

    def has_permission(self, request: Request, view: Any) -> bool:
        user: Any = request.user
        if not (user and user.is_authenticated and user.is_active and user.is_staff):
            return False
        services.staff_mfa_require(user=user, mfa_passed=request_mfa_passed(request))
        return True
