"""Errors of the accounts part, in the platform's one hierarchy (``{"detail", "code"}``)."""

from rest_framework import status

from common.errors import ApplicationError


class AuthenticationError(ApplicationError):
    """Credentials or a token that do not authenticate (401)."""

    status_code = status.HTTP_401_UNAUTHORIZED
    code = "not_authenticated"


class LockedOut(ApplicationError):
    """Too many failed logins for an account; says nothing about whether it exists (429)."""

    status_code = status.HTTP_429_TOO_MANY_REQUESTS
    code = "login_locked"


class MfaRequired(ApplicationError):
    """A staff page or endpoint reached without a second factor (403).

    ``mfa_setup_required``: the account has no MFA device yet. ``mfa_step_required``: it has
    one, but this session or token did not pass the MFA step.
    """

    status_code = status.HTTP_403_FORBIDDEN
    code = "mfa_required"
