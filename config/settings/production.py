"""Production settings: everything from the environment, secure by default."""

from .base import *  # noqa: F403
from .env import env

DEBUG = False
SECRET_KEY = env.str("DJANGO_SECRET_KEY")
# Cookies only over HTTPS (turn off only behind plain-HTTP test setups).
SESSION_COOKIE_SECURE = env.bool("DJANGO_SECURE_COOKIES", default=True)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_CONTENT_TYPE_NOSNIFF = True
LOG_JSON = env.bool("LOG_JSON", default=True)
# Production serves the static files collectstatic gathered (compressed; names unhashed,
# as the ES modules import each other by relative path).
WHITENOISE_USE_FINDERS = env.bool("WHITENOISE_USE_FINDERS", default=False)
STORAGES["staticfiles"] = {  # noqa: F405
    "BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"
}
# The interactive terminal gives users a shell on the host's sandbox: off unless turned on.
TERMINAL_ENABLED = env.bool("TERMINAL_ENABLED", default=False)
