"""Settings of the accounts part of the platform, read from the environment.

JWT lifetimes, the refresh grace window, MFA, brute-force lockout, the sliding-window rate
limits (``limits`` moving window on Redis) and OAuth (social-auth-app-django).
"""

from datetime import timedelta

from celery.schedules import crontab
from django.core.exceptions import ImproperlyConfigured
from limits import parse as parse_rate

from ..env import env

# --- JWT (djangorestframework-simplejwt) ----------------------------------------------------
# Minutes an access token (JWT) stays valid.
ACCOUNTS_ACCESS_TOKEN_MINUTES = env.int("ACCOUNTS_ACCESS_TOKEN_MINUTES", default=5)
# Days a refresh token stays valid (each refresh rotates it).
ACCOUNTS_REFRESH_TOKEN_DAYS = env.int("ACCOUNTS_REFRESH_TOKEN_DAYS", default=14)
# A refresh token presented again within this many seconds of its rotation gets the same new
# pair (two tabs refreshing at once); later, it counts as reuse and revokes its session.
ACCOUNTS_REFRESH_GRACE_SECONDS = env.int("ACCOUNTS_REFRESH_GRACE_SECONDS", default=5)
# Absolute session lifetime: past it, refresh is refused however active the session was.
ACCOUNTS_SESSION_MAX_DAYS = env.int("ACCOUNTS_SESSION_MAX_DAYS", default=30)
# Minutes the MFA step of a login may take (the life of its mfa_token).
ACCOUNTS_MFA_TOKEN_MINUTES = env.int("ACCOUNTS_MFA_TOKEN_MINUTES", default=5)
# Wrong codes one mfa_token survives before the login must start again.
ACCOUNTS_MFA_TOKEN_MAX_ATTEMPTS = env.int("ACCOUNTS_MFA_TOKEN_MAX_ATTEMPTS", default=5)
# Seconds the one-time code an API client exchanges for tokens after OAuth stays valid.
ACCOUNTS_OAUTH_EXCHANGE_CODE_SECONDS = env.int("ACCOUNTS_OAUTH_EXCHANGE_CODE_SECONDS", default=60)
ACCOUNTS_BACKUP_CODE_COUNT = 10
for _name in (
    "ACCOUNTS_ACCESS_TOKEN_MINUTES",
    "ACCOUNTS_REFRESH_TOKEN_DAYS",
    "ACCOUNTS_SESSION_MAX_DAYS",
    "ACCOUNTS_MFA_TOKEN_MINUTES",
    "ACCOUNTS_MFA_TOKEN_MAX_ATTEMPTS",
    "ACCOUNTS_OAUTH_EXCHANGE_CODE_SECONDS",
):
    if globals()[_name] <= 0:
        raise ImproperlyConfigured(f"{_name} must be a positive integer")
if ACCOUNTS_REFRESH_GRACE_SECONDS < 0:
    raise ImproperlyConfigured("ACCOUNTS_REFRESH_GRACE_SECONDS must be zero or more")

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
# Issuer name authenticator apps show next to the TOTP code.
OTP_TOTP_ISSUER = env.str("ACCOUNTS_TOTP_ISSUER", default="AI Workflow Platform")
OTP_TOTP_THROTTLE_FACTOR = 1

# --- Brute force: failed logins per account (by email, existing or not) ---------------------
# Failed logins of one account within the window that lock it.
ACCOUNTS_LOGIN_LOCKOUT_THRESHOLD = env.int("ACCOUNTS_LOGIN_LOCKOUT_THRESHOLD", default=10)
# Seconds over which failed logins are counted (and a lockout lasts).
ACCOUNTS_LOGIN_LOCKOUT_WINDOW_SECONDS = env.int(
    "ACCOUNTS_LOGIN_LOCKOUT_WINDOW_SECONDS", default=3600
)
if ACCOUNTS_LOGIN_LOCKOUT_THRESHOLD <= 0 or ACCOUNTS_LOGIN_LOCKOUT_WINDOW_SECONDS <= 0:
    raise ImproperlyConfigured("the login lockout threshold and window must be positive")

# --- Rate limits: a true sliding window (limits' moving window) on Redis --------------------
# Scopes keyed by client IP: register, login, mfa, refresh, oauth. Keyed by user (or IP when
# anonymous): user (every API call), generate (project generation, tighter). Values use the
# ``limits`` notation: "10/minute", "100 per hour", "3 per 2 seconds".
ACCOUNTS_RATE_LIMITS = {
    # Registrations per client IP.
    "register": env.str("RATE_LIMIT_REGISTER", default="20/hour"),
    # Login attempts per client IP.
    "login": env.str("RATE_LIMIT_LOGIN", default="20/minute"),
    # MFA code attempts per client IP.
    "mfa": env.str("RATE_LIMIT_MFA", default="10/minute"),
    # Token refreshes per client IP.
    "refresh": env.str("RATE_LIMIT_REFRESH", default="60/minute"),
    # OAuth sign-in starts and exchanges per client IP.
    "oauth": env.str("RATE_LIMIT_OAUTH", default="30/minute"),
    # API calls per signed-in user.
    "user": env.str("RATE_LIMIT_USER", default="2000/minute"),
    # API calls per client IP without a sign-in.
    "anon": env.str("RATE_LIMIT_ANON", default="600/minute"),
    # Project generations (POST /projects/{id}/generate) per user.
    "generate": env.str("RATE_LIMIT_GENERATE", default="60/hour"),
}
for _scope, _rate in ACCOUNTS_RATE_LIMITS.items():
    try:
        parse_rate(_rate)
    except ValueError as _exc:
        raise ImproperlyConfigured(f"RATE_LIMIT_{_scope.upper()}={_rate!r}: {_exc}") from _exc
# With Redis unreachable these scopes refuse with 503 (fail closed); the others let the call
# through and log it, so the whole API does not go down with the rate-limit store.
ACCOUNTS_RATE_LIMIT_FAIL_CLOSED = ["register", "login", "mfa", "refresh", "oauth", "generate"]
# Empty: the platform's Redis (REDIS_URL).
ACCOUNTS_RATE_LIMIT_STORAGE_URL = env.str("RATE_LIMIT_STORAGE_URL", default="")
# Number of reverse proxies in front of the app whose X-Forwarded-For entries are trusted.
ACCOUNTS_NUM_PROXIES = env.int("ACCOUNTS_NUM_PROXIES", default=0)

# --- OAuth (social-auth-app-django) ---------------------------------------------------------
# Begin is a CSRF-protected POST; state is checked; PKCE (S256) is on for both providers.

# Google OAuth client id (empty: Google sign-in is off).
SOCIAL_AUTH_GOOGLE_KEY = env.str("GOOGLE_OAUTH_CLIENT_ID", default="")
# Google OAuth client secret.
SOCIAL_AUTH_GOOGLE_SECRET = env.str("GOOGLE_OAUTH_CLIENT_SECRET", default="")
# GitHub OAuth client id (empty: GitHub sign-in is off).
SOCIAL_AUTH_GITHUB_KEY = env.str("GITHUB_OAUTH_CLIENT_ID", default="")
# GitHub OAuth client secret.
SOCIAL_AUTH_GITHUB_SECRET = env.str("GITHUB_OAUTH_CLIENT_SECRET", default="")
SOCIAL_AUTH_GITHUB_SCOPE = ["read:user", "user:email"]
SOCIAL_AUTH_GOOGLE_USE_PKCE = True
SOCIAL_AUTH_GITHUB_USE_PKCE = True
# Provider endpoints are overridable so a self-hosted or test provider can stand in.

# Google's authorization endpoint.
SOCIAL_AUTH_GOOGLE_AUTHORIZATION_URL = env.str(
    "GOOGLE_OAUTH_AUTHORIZATION_URL", default="https://accounts.google.com/o/oauth2/auth"
)
# Google's token endpoint.
SOCIAL_AUTH_GOOGLE_ACCESS_TOKEN_URL = env.str(
    "GOOGLE_OAUTH_TOKEN_URL", default="https://oauth2.googleapis.com/token"
)
# Google's userinfo endpoint.
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
# GitHub's API base URL (user and email lookups).
SOCIAL_AUTH_GITHUB_API_URL = env.str("GITHUB_API_URL", default="https://api.github.com/")
SOCIAL_AUTH_USER_MODEL = "accounts.User"
SOCIAL_AUTH_JSONFIELD_ENABLED = True
SOCIAL_AUTH_URL_NAMESPACE = "social"
SOCIAL_AUTH_LOGIN_REDIRECT_URL = "/"
SOCIAL_AUTH_LOGIN_ERROR_URL = "/"
# Build OAuth callback URLs with https (behind a TLS-terminating proxy).
SOCIAL_AUTH_REDIRECT_IS_HTTPS = env.bool("SOCIAL_AUTH_REDIRECT_IS_HTTPS", default=False)
SOCIAL_AUTH_FIELDS_STORED_IN_SESSION: list[str] = []
SOCIAL_AUTH_PIPELINE = (
    "social_core.pipeline.social_auth.social_details",
    "social_core.pipeline.social_auth.social_uid",
    "social_core.pipeline.social_auth.auth_allowed",
    "social_core.pipeline.social_auth.social_user",
    "accounts.oauth.associate_by_verified_email",
    "accounts.oauth.create_user",
    "social_core.pipeline.social_auth.associate_user",
    "social_core.pipeline.social_auth.load_extra_data",
    "accounts.oauth.refuse_inactive",
)
# API clients may ask to be sent back to these redirect URIs (plus any loopback address,
# RFC 8252) with a one-time exchange code after OAuth.
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
}
