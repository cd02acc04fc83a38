"""Browser routes of the accounts part: sign-up, sign-out, the password reset and the Account
page.

Signing in happens at ``/`` (``projects.pages.home``), which shows the projects once signed in.
"""

from django.urls import path

from . import pages, reset_pages

urlpatterns = [
    path("password/reset", reset_pages.password_reset_request_page, name="page-password-reset"),
    path(
        "password/reset/<uidb64>/<token>",
        reset_pages.PasswordResetConfirmPage.as_view(),
        name="page-password-reset-confirm",
    ),
    path("signup", pages.sign_up, name="page-signup"),
    path("signout", pages.sign_out, name="page-signout"),
    path("account", pages.account, name="page-account"),
    path("account/mfa/setup", pages.mfa_setup, name="page-mfa-setup"),
    path("account/mfa/confirm", pages.mfa_confirm, name="page-mfa-confirm"),
    path("account/mfa/backup-codes", pages.backup_codes_regenerate, name="page-backup-codes"),
    path("account/mfa/disable", pages.mfa_disable, name="page-mfa-disable"),
    path(
        "account/sessions/<uuid:session_id>/sign-out",
        pages.session_sign_out,
        name="page-session-sign-out",
    ),
    path("account/password", pages.password_change, name="page-password"),
    path("account/email/resend", pages.email_verification_resend, name="page-verify-resend"),
]
