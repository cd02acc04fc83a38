"""Production settings: everything from the environment, secure by default.

HTTPS only: plain HTTP is redirected (except the /health and /metrics probes of a load
balancer or Prometheus on the private network), browsers are told to stick to HTTPS
(HSTS), and cookies are sent over HTTPS only. Behind a TLS-terminating proxy, set
``DJANGO_BEHIND_TLS_PROXY=true`` so the proxy's ``X-Forwarded-Proto`` is believed; without a
proxy that header is ignored, since any client could send it. ``/metrics`` needs
``METRICS_TOKEN``.

Production refuses to start (``ImproperlyConfigured``, naming the variable) with the public
development values: the development ``DJANGO_SECRET_KEY``, and ``DJANGO_CSRF_TRUSTED_ORIGINS``
left unset or naming a loopback origin (the development ones are ``http://localhost:8001``
and ``http://127.0.0.1:8001``). Those origins also decide which pages may open the
platform's WebSockets, so a page on the visitor's own machine must not be among them. It
also refuses to start without ``SECRETS_ENCRYPTION_KEYS``, the keys of the secrets at rest.
"""

import ipaddress
from urllib.parse import urlsplit

from django.core.exceptions import ImproperlyConfigured

from .base import *  # noqa: F403
from .base import DEVELOPMENT_SECRET_KEY
from .env import env


def _loopback(origin: str) -> bool:
    host = (urlsplit(origin.strip()).hostname or "").rstrip(".").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


DEBUG = False
SECRET_KEY = env.str("DJANGO_SECRET_KEY")
if SECRET_KEY.strip() == DEVELOPMENT_SECRET_KEY:
    raise ImproperlyConfigured(
        "DJANGO_SECRET_KEY is the development key, which is public: set a long random value "
        "of your own (python -c 'import secrets; print(secrets.token_urlsafe(50))')."
    )
CSRF_TRUSTED_ORIGINS = env.list("DJANGO_CSRF_TRUSTED_ORIGINS")
_local_origins = [origin for origin in CSRF_TRUSTED_ORIGINS if _loopback(origin)]
if _local_origins:
    raise ImproperlyConfigured(
        "DJANGO_CSRF_TRUSTED_ORIGINS names a loopback origin ("
        + ", ".join(_local_origins)
        + "): list the https:// origin people reach the site at. These origins may post forms "
        "and open WebSockets with a signed-in visitor's cookie."
    )
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
# Forge tokens, SSH keys and webhook signing secrets are encrypted with SECRETS_ENCRYPTION_KEYS
# (read in components/secrets.py): production refuses to start without them (the development
# key is derived from a value not meant for it).
if not SECRETS_ENCRYPTION_KEYS:  # noqa: F405
    raise ImproperlyConfigured(
        "Set SECRETS_ENCRYPTION_KEYS (Fernet keys) to encrypt forge tokens, SSH keys and "
        "webhook signing secrets in production."
    )
LOGGING["formatters"]["structured"]["json"] = LOG_JSON  # noqa: F405 - built in base
