"""Production settings: everything from the environment, secure by default.

HTTPS only: plain HTTP is redirected (except the /health and /metrics probes of a load
balancer or Prometheus on the private network), browsers are told to stick to HTTPS
(HSTS), and cookies are sent over HTTPS only. Behind a TLS-terminating proxy, set
``DJANGO_BEHIND_TLS_PROXY=true`` so the proxy's ``X-Forwarded-Proto`` is believed; without a
proxy that header is ignored, since any client could send it. ``/metrics`` needs
``METRICS_TOKEN``.
"""

from django.core.exceptions import ImproperlyConfigured

from .base import *  # noqa: F403
from .env import env

DEBUG = False
SECRET_KEY = env.str("DJANGO_SECRET_KEY")
# Cookies only over HTTPS (turn off only behind plain-HTTP test setups).
SESSION_COOKIE_SECURE = env.bool("DJANGO_SECURE_COOKIES", default=True)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
SECURE_CONTENT_TYPE_NOSNIFF = True
# Redirect plain-HTTP requests to HTTPS (false only where TLS is handled out of band).
SECURE_SSL_REDIRECT = env.bool("DJANGO_SSL_REDIRECT", default=True)
# Probes on the private network keep working over plain HTTP.
SECURE_REDIRECT_EXEMPT = [r"^health$", r"^metrics$"]
# Seconds browsers keep to HTTPS for this site after a visit (HSTS); 0 turns HSTS off.
SECURE_HSTS_SECONDS = env.int("DJANGO_HSTS_SECONDS", default=31_536_000)
# HSTS covers the site's subdomains too.
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("DJANGO_HSTS_INCLUDE_SUBDOMAINS", default=True)
# Ask browsers to preload HSTS for the domain (only once it is submitted to the list).
SECURE_HSTS_PRELOAD = env.bool("DJANGO_HSTS_PRELOAD", default=False)
# A TLS-terminating proxy in front sets X-Forwarded-Proto, and only then is it trusted.
if env.bool("DJANGO_BEHIND_TLS_PROXY", default=False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
# /metrics refuses every request until METRICS_TOKEN is set.
METRICS_REQUIRE_TOKEN = True
# JSON log lines (one object a line) for the log collector.
LOG_JSON = env.bool("LOG_JSON", default=True)
# Production serves the static files collectstatic gathered (compressed; names unhashed,
# as the ES modules import each other by relative path).
WHITENOISE_USE_FINDERS = env.bool("WHITENOISE_USE_FINDERS", default=False)
STORAGES["staticfiles"] = {  # noqa: F405
    "BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"
}
# The interactive terminal gives users a shell on the host's sandbox: off unless turned on.
TERMINAL_ENABLED = env.bool("TERMINAL_ENABLED", default=False)
LOGGING["formatters"]["structured"]["json"] = LOG_JSON  # noqa: F405 - built in base
# Webhook signing secrets are encrypted with WEBHOOKS_SECRET_KEYS: production refuses to start
# without them (the development key is derived from a value not meant for it).
if not WEBHOOKS_SECRET_KEYS:  # noqa: F405 - read in components/webhooks.py
    raise ImproperlyConfigured(
        "Set WEBHOOKS_SECRET_KEYS (Fernet keys) to encrypt webhook signing secrets in production."
    )
