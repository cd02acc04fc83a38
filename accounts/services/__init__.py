"""Writes of the accounts part: registration, email verification, login, device sessions,
rotation, MFA, the staff MFA rule, OAuth codes.

Every function is keyword-only and typed. Emails are compared in one way only,
``canonical_email`` (through ``User.objects.with_email``). Callers import from here; the
modules are ``registration`` (the account and its email verification), ``sessions`` (device
sessions, rotation, revocation), ``lockout`` (failed sign-ins), ``mfa``, ``login``
(password sign-in and OAuth exchange codes) and ``password_reset`` (reset by email).
"""

from .lockout import account_password_check, login_failed, login_guard, login_lockout_clear
from .login import (
    LoginResult,
    auth_login,
    oauth_exchange_code_create,
    oauth_exchange_code_redeem,
    pkce_s256,
)
from .mfa import (
    mfa_backup_codes_regenerate,
    mfa_disable,
    mfa_login_verify,
    mfa_token_issue,
    mfa_totp_confirm,
    mfa_totp_setup,
    second_factor_device,
    second_factor_verify,
    staff_mfa_require,
    user_has_mfa,
)
from .password_reset import (
    password_reset_complete,
    password_reset_confirm,
    password_reset_request,
    password_reset_user,
)
from .registration import (
    email_verification_claim,
    email_verification_link,
    email_verification_resend,
    email_verification_send,
    email_verification_token,
    email_verify,
    unverified_accounts_expire,
    user_register,
)
from .sessions import (
    accounts_expire,
    session_logout,
    session_refresh,
    session_revoke,
    session_start,
    user_deactivate,
    user_password_change,
    user_sessions_revoke_all,
)

__all__ = [
    "LoginResult",
    "account_password_check",
    "accounts_expire",
    "auth_login",
    "email_verification_link",
    "email_verification_resend",
    "email_verification_send",
    "email_verification_claim",
    "email_verification_token",
    "email_verify",
    "login_failed",
    "login_guard",
    "login_lockout_clear",
    "mfa_backup_codes_regenerate",
    "mfa_disable",
    "mfa_login_verify",
    "mfa_token_issue",
    "mfa_totp_confirm",
    "mfa_totp_setup",
    "oauth_exchange_code_create",
    "oauth_exchange_code_redeem",
    "password_reset_complete",
    "password_reset_confirm",
    "password_reset_request",
    "password_reset_user",
    "pkce_s256",
    "second_factor_device",
    "second_factor_verify",
    "session_logout",
    "session_refresh",
    "session_revoke",
    "session_start",
    "staff_mfa_require",
    "unverified_accounts_expire",
    "user_deactivate",
    "user_has_mfa",
    "user_password_change",
    "user_register",
    "user_sessions_revoke_all",
]
