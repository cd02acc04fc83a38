"""Settings of the accounts part of the platform, read from the environment.

JWT lifetimes, the refresh grace window, MFA, brute-force lockout, email verification and
outgoing mail, the sliding-window rate limits (``limits`` moving window on Redis) and OAuth
(social-auth-app-django).
"""

from datetime import timedelta

from celery.schedules import crontab
from django.core.exceptions import ImproperlyConfigured
from limits import parse as parse_rate

from ..env import env

# --- JWT (djangorestframework-simplejwt) ----------------------------------------------------
# Lifetime of an access token, in minutes.
ACCOUNTS_ACCESS_TOKEN_MINUTES = env.int("ACCOUNTS_ACCESS_TOKEN_MINUTES", default=5)
# Lifetime of a refresh token, in days (each refresh rotates it).
ACCOUNTS_REFRESH_TOKEN_DAYS = env.int("ACCOUNTS_REFRESH_TOKEN_DAYS", default=14)
# Seconds a rotated refresh token still gets the same new pair; later, reuse revokes the session.
ACCOUNTS_REFRESH_GRACE_SECONDS = env.int("ACCOUNTS_REFRESH_GRACE_SECONDS", default=5)
# Absolute session lifetime: past it, refresh is refused however active the session was.
ACCOUNTS_SESSION_MAX_DAYS = env.int("ACCOUNTS_SESSION_MAX_DAYS", default=30)
# Minutes the token between the password step and the MFA step stays valid.
ACCOUNTS_MFA_TOKEN_MINUTES = env.int("ACCOUNTS_MFA_TOKEN_MINUTES", default=5)
# Wrong codes one MFA token may take before it dies (sign in again).
ACCOUNTS_MFA_TOKEN_MAX_ATTEMPTS = env.int("ACCOUNTS_MFA_TOKEN_MAX_ATTEMPTS", default=5)
# Seconds an OAuth one-time exchange code stays valid.
ACCOUNTS_OAUTH_EXCHANGE_CODE_SECONDS = env.int("ACCOUNTS_OAUTH_EXCHANGE_CODE_SECONDS", default=60)
# Hours a mailed email-verification link stays valid (it also works only once).
ACCOUNTS_EMAIL_VERIFICATION_HOURS = env.int("ACCOUNTS_EMAIL_VERIFICATION_HOURS", default=48)
# Minutes after signing in in which an account without a password may turn MFA on.
ACCOUNTS_REAUTH_MINUTES = env.int("ACCOUNTS_REAUTH_MINUTES", default=10)
# Days an account whose address nobody verified is kept; then it is deleted (staff excepted)
# and the address is free again.
ACCOUNTS_UNVERIFIED_DAYS = env.int("ACCOUNTS_UNVERIFIED_DAYS", default=7)
# Minutes a mailed password-reset link stays valid (it also works only once).
ACCOUNTS_PASSWORD_RESET_MINUTES = env.int("ACCOUNTS_PASSWORD_RESET_MINUTES", default=60)
ACCOUNTS_BACKUP_CODE_COUNT = 10
for _name in (
    "ACCOUNTS_ACCESS_TOKEN_MINUTES",
    "ACCOUNTS_REFRESH_TOKEN_DAYS",
    "ACCOUNTS_SESSION_MAX_DAYS",
    "ACCOUNTS_MFA_TOKEN_MINUTES",
    "ACCOUNTS_MFA_TOKEN_MAX_ATTEMPTS",
    "ACCOUNTS_OAUTH_EXCHANGE_CODE_SECONDS",
    "ACCOUNTS_EMAIL_VERIFICATION_HOURS",
    "ACCOUNTS_REAUTH_MINUTES",
    "ACCOUNTS_UNVERIFIED_DAYS",
    "ACCOUNTS_PASSWORD_RESET_MINUTES",
):
    if globals()[_name] <= 0:
        raise ImproperlyConfigured(f"{_name} must be a positive integer")
if ACCOUNTS_REFRESH_GRACE_SECONDS < 0:
    raise ImproperlyConfigured("ACCOUNTS_REFRESH_GRACE_SECONDS must be zero or more")
# Django's password-reset tokens (default_token_generator) expire after this many seconds.
PASSWORD_RESET_TIMEOUT = ACCOUNTS_PASSWORD_RESET_MINUTES * 60

SIMPLE_JWT = {
    "ACCESS_TOKEN_LIFETIME": timedelta(minutes=ACCOUNTS_ACCESS_TOKEN_MINUTES),
    "REFRESH_TOKEN_LIFETIME": timedelta(days=ACCOUNTS_REFRESH_TOKEN_DAYS),
    "ROTATE_REFRESH_TOKENS": True,
    "BLACKLIST_AFTER_ROTATION": True,
    "UPDATE_LAST_LOGIN": False,
    "ALGORITHM": "HS256",
    "AUTH_HEADER_TYPES": ("Bearer",),
    "USER_ID_FIELD": "id",
    "USER_ID_CLAIM": "user_id",
    "TOKEN_TYPE_CLAIM": "token_type",
    "JTI_CLAIM": "jti",
    "LEEWAY": 0,
}

# Without JWT_SIGNING_KEY, simplejwt signs with SECRET_KEY.
if _jwt_key := env.str("JWT_SIGNING_KEY", default=""):
    SIMPLE_JWT["SIGNING_KEY"] = _jwt_key

# --- MFA (django-otp) -----------------------------------------------------------------------
# The issuer name authenticator apps show next to the account.
OTP_TOTP_ISSUER = env.str("ACCOUNTS_TOTP_ISSUER", default="AI Workflow Platform")
OTP_TOTP_THROTTLE_FACTOR = 1
# DRF permissions of the staff endpoints (GET /admin/providers): staff who passed MFA.
STAFF_API_PERMISSION_CLASSES = ["accounts.permissions.IsStaffWithMfa"]

# --- Outgoing mail (email verification links) -----------------------------------------------
# Mail transport URL: consolemail:// logs mails, smtp+tls://user:password@host:587 sends them.
_email = env.email_url("EMAIL_URL", default="consolemail://")
EMAIL_BACKEND = _email["EMAIL_BACKEND"]
EMAIL_HOST = _email.get("EMAIL_HOST") or "localhost"
EMAIL_PORT = _email.get("EMAIL_PORT") or 25
EMAIL_HOST_USER = _email.get("EMAIL_HOST_USER") or ""
EMAIL_HOST_PASSWORD = _email.get("EMAIL_HOST_PASSWORD") or ""
EMAIL_USE_TLS = bool(_email.get("EMAIL_USE_TLS"))
EMAIL_USE_SSL = bool(_email.get("EMAIL_USE_SSL"))
# The sender address of the platform's mails.
DEFAULT_FROM_EMAIL = env.str(
    "DEFAULT_FROM_EMAIL", default="AI Workflow Platform <noreply@localhost>"
)
# Seconds a mail server may take before sending gives up.
EMAIL_TIMEOUT = env.int("EMAIL_TIMEOUT", default=10)

# --- Brute force: failed logins per account (by account, else by canonical email) -----------
# Failed sign-ins (passwords or second factors) that lock an account for the window.
ACCOUNTS_LOGIN_LOCKOUT_THRESHOLD = env.int("ACCOUNTS_LOGIN_LOCKOUT_THRESHOLD", default=10)
# The moving window, in seconds, over which failed sign-ins are counted.
ACCOUNTS_LOGIN_LOCKOUT_WINDOW_SECONDS = env.int(
    "ACCOUNTS_LOGIN_LOCKOUT_WINDOW_SECONDS", default=3600
)
if ACCOUNTS_LOGIN_LOCKOUT_THRESHOLD <= 0 or ACCOUNTS_LOGIN_LOCKOUT_WINDOW_SECONDS <= 0:
    raise ImproperlyConfigured("the login lockout threshold and window must be positive")

# --- Rate limits: a true sliding window (limits' moving window) on Redis --------------------
# Scopes keyed by client IP: register, login, mfa, refresh, oauth. Keyed by user (or IP when
# anonymous): user (every API call), generate (project generation, tighter), verify_email
# (verification mails asked for again). Keyed by project: forge_hook (follow-up runs started
# by forge review comments). Values use the ``limits`` notation: "10/minute",
# "100 per hour", "3 per 2 seconds".
ACCOUNTS_RATE_LIMITS = {
    # Registrations per client IP.
    "register": env.str("RATE_LIMIT_REGISTER", default="20/hour"),
    # Sign-in attempts (API and dashboard) per client IP.
    "login": env.str("RATE_LIMIT_LOGIN", default="20/minute"),
    # MFA codes (sign-in, enrolment, backup codes, disable) per client IP.
    "mfa": env.str("RATE_LIMIT_MFA", default="10/minute"),
    # Token refreshes and logouts per client IP.
    "refresh": env.str("RATE_LIMIT_REFRESH", default="60/minute"),
    # OAuth starts and code exchanges per client IP.
    "oauth": env.str("RATE_LIMIT_OAUTH", default="30/minute"),
    # API calls per signed-in user.
    "user": env.str("RATE_LIMIT_USER", default="2000/minute"),
    # API calls per client IP without a sign-in.
    "anon": env.str("RATE_LIMIT_ANON", default="600/minute"),
    # Project generations per user.
    "generate": env.str("RATE_LIMIT_GENERATE", default="60/hour"),
    # Verification mails a user may ask to be sent again.
    "verify_email": env.str("RATE_LIMIT_VERIFY_EMAIL", default="3/hour"),
    # Password-reset requests per client IP; as many reset mails per account at most.
    "password_reset": env.str("RATE_LIMIT_PASSWORD_RESET", default="5/hour"),
    # Follow-up runs forge review comments may start, per project.
    "forge_hook": env.str("RATE_LIMIT_FORGE_HOOK", default="30/hour"),
}
for _scope, _rate in ACCOUNTS_RATE_LIMITS.items():
    try:
        parse_rate(_rate)
    except ValueError as _exc:
        raise ImproperlyConfigured(f"RATE_LIMIT_{_scope.upper()}={_rate!r}: {_exc}") from _exc
# With Redis unreachable these scopes refuse with 503 (fail closed); the others let the call
# through and log it, so the whole API does not go down with the rate-limit store.
ACCOUNTS_RATE_LIMIT_FAIL_CLOSED = [
    "register",
    "password_reset",
    "login",
    "mfa",
    "refresh",
    "oauth",
    "generate",
    "verify_email",
    "forge_hook",
]
# Redis URL of the rate-limit counters (empty: the platform's Redis, REDIS_URL).
ACCOUNTS_RATE_LIMIT_STORAGE_URL = env.str("RATE_LIMIT_STORAGE_URL", default="")
# Number of reverse proxies in front of the app whose X-Forwarded-For entries are trusted.
ACCOUNTS_NUM_PROXIES = env.int("ACCOUNTS_NUM_PROXIES", default=0)

# --- OAuth (social-auth-app-django) ---------------------------------------------------------
# Begin is a CSRF-protected POST; state is checked; PKCE (S256) is on for both providers.

# Google OAuth client id (empty: Google sign-in is off).
SOCIAL_AUTH_GOOGLE_KEY = env.str("GOOGLE_OAUTH_CLIENT_ID", default="")
# Google OAuth client secret.
SOCIAL_AUTH_GOOGLE_SECRET = env.str("GOOGLE_OAUTH_CLIENT_SECRET", default="")
# GitHub OAuth app client id (empty: GitHub sign-in is off).
SOCIAL_AUTH_GITHUB_KEY = env.str("GITHUB_OAUTH_CLIENT_ID", default="")
# GitHub OAuth app client secret.
SOCIAL_AUTH_GITHUB_SECRET = env.str("GITHUB_OAUTH_CLIENT_SECRET", default="")
SOCIAL_AUTH_GITHUB_SCOPE = ["read:user", "user:email"]
SOCIAL_AUTH_GOOGLE_USE_PKCE = True
SOCIAL_AUTH_GITHUB_USE_PKCE = True
# Google's authorization endpoint (overridable so a self-hosted or test provider can stand in).
SOCIAL_AUTH_GOOGLE_AUTHORIZATION_URL = env.str(
    "GOOGLE_OAUTH_AUTHORIZATION_URL", default="https://accounts.google.com/o/oauth2/auth"
)
# Google's token endpoint.
SOCIAL_AUTH_GOOGLE_ACCESS_TOKEN_URL = env.str(
    "GOOGLE_OAUTH_TOKEN_URL", default="https://oauth2.googleapis.com/token"
)
# Google's OpenID Connect user-info endpoint.
SOCIAL_AUTH_GOOGLE_USERINFO_URL = env.str(
    "GOOGLE_OAUTH_USERINFO_URL", default="https://openidconnect.googleapis.com/v1/userinfo"
)
# GitHub's authorization endpoint.
SOCIAL_AUTH_GITHUB_AUTHORIZATION_URL = env.str(
    "GITHUB_OAUTH_AUTHORIZATION_URL", default="https://github.com/login/oauth/authorize"
)
# GitHub's token endpoint.
SOCIAL_AUTH_GITHUB_ACCESS_TOKEN_URL = env.str(
    "GITHUB_OAUTH_TOKEN_URL", default="https://github.com/login/oauth/access_token"
)
# GitHub's REST API (user and emails).
SOCIAL_AUTH_GITHUB_API_URL = env.str("GITHUB_API_URL", default="https://api.github.com/")
SOCIAL_AUTH_USER_MODEL = "accounts.User"
SOCIAL_AUTH_JSONFIELD_ENABLED = True
SOCIAL_AUTH_URL_NAMESPACE = "social"
SOCIAL_AUTH_LOGIN_REDIRECT_URL = "/"
SOCIAL_AUTH_LOGIN_ERROR_URL = "/"
# Build the OAuth callback URL with https (behind a TLS-terminating proxy).
SOCIAL_AUTH_REDIRECT_IS_HTTPS = env.bool("SOCIAL_AUTH_REDIRECT_IS_HTTPS", default=False)
SOCIAL_AUTH_FIELDS_STORED_IN_SESSION: list[str] = []
SOCIAL_AUTH_PIPELINE = (
    "social_core.pipeline.social_auth.social_details",
    "social_core.pipeline.social_auth.social_uid",
    "social_core.pipeline.social_auth.auth_allowed",
    "social_core.pipeline.social_auth.social_user",
    "accounts.oauth.associate_by_verified_email",
    "accounts.oauth.create_user",
    "accounts.oauth.refuse_inactive",
    "accounts.oauth.confirm_first_link",
    "social_core.pipeline.social_auth.associate_user",
    "accounts.oauth.revoke_sessions_on_link",
    "social_core.pipeline.social_auth.load_extra_data",
)
# Redirect URIs (besides loopback ones, RFC 8252) API clients may be sent back to after OAuth.
ACCOUNTS_OAUTH_CLIENT_REDIRECTS = env.list("ACCOUNTS_OAUTH_CLIENT_REDIRECTS", default=[])

LOGIN_URL = "/"

AUTHENTICATION_BACKENDS = [
    "accounts.oauth.GoogleOAuth2",
    "accounts.oauth.GithubOAuth2",
    "django.contrib.auth.backends.ModelBackend",
]

# --- Periodic housekeeping ------------------------------------------------------------------
ACCOUNTS_BEAT_SCHEDULE: dict = {
    "accounts-expire-sessions-and-codes": {
        "task": "accounts.tasks.accounts_expire",
        "schedule": crontab(minute="*/15"),
    },
    "accounts-expire-unverified": {
        "task": "accounts.tasks.unverified_accounts_expire",
        "schedule": crontab(minute=7),
    },
}
