"""Auth API routes, mounted under ``/auth/`` (no trailing slashes, like the rest of the API)."""

from django.urls import path

from .. import views as web
from . import views

urlpatterns = [
    path("register", views.RegisterView.as_view(), name="auth-register"),
    path("login", views.LoginView.as_view(), name="auth-login"),
    path("refresh", views.RefreshView.as_view(), name="auth-refresh"),
    path("logout", views.LogoutView.as_view(), name="auth-logout"),
    path("me", views.MeView.as_view(), name="auth-me"),
    path("password", views.PasswordChangeView.as_view(), name="auth-password"),
    path("password/reset", views.PasswordResetView.as_view(), name="auth-password-reset"),
    path(
        "password/reset/confirm",
        views.PasswordResetConfirmView.as_view(),
        name="auth-password-reset-confirm",
    ),
    path("sessions", views.SessionListView.as_view(), name="auth-sessions"),
    path("sessions/<uuid:session_id>", views.SessionDetailView.as_view(), name="auth-session"),
    path("mfa/verify", views.MfaVerifyView.as_view(), name="auth-mfa-verify"),
    path("mfa/totp/setup", views.TotpSetupView.as_view(), name="auth-mfa-setup"),
    path("mfa/totp/confirm", views.TotpConfirmView.as_view(), name="auth-mfa-confirm"),
    path("mfa/backup-codes", views.BackupCodesView.as_view(), name="auth-mfa-backup-codes"),
    path("mfa/disable", views.MfaDisableView.as_view(), name="auth-mfa-disable"),
    path("email/verify", views.EmailVerifyView.as_view(), name="auth-email-verify"),
    path(
        "email/verify/resend",
        views.EmailVerifyResendView.as_view(),
        name="auth-email-verify-resend",
    ),
    path("email/verify/<str:token>", web.email_verify_page, name="auth-email-verify-link"),
    path("oauth/exchange", views.OAuthExchangeView.as_view(), name="auth-oauth-exchange"),
    path("oauth/link", web.oauth_link_confirm, name="oauth-link-confirm"),
    path("oauth/<str:backend>/", web.oauth_begin, name="oauth-begin"),
    path("oauth/<str:backend>/complete/", web.oauth_complete, name="oauth-complete"),
]
