"""Settings of the web pages: static files (WhiteNoise) and the Content Security Policy.

Browser packages (htmx and its SSE extension, xterm.js and its fit addon) come from the npm
registry, pinned by ``package-lock.json`` and installed into ``node_modules`` by ``npm ci``
(``make up`` and ``make test`` run it). Only their ``dist`` folders are exposed, under
``static/vendor/``; ``collectstatic`` copies them with the project's own ``static/`` tree.

The policy forbids inline scripts, inline styles and ``eval``. The one exception is xterm.js,
which writes its own ``<style>`` elements: the terminal page stamps them with the response's
nonce.
"""

from csp.constants import NONCE, NONE, SELF

from ..env import BASE_DIR, env
from .accounts import (
    SOCIAL_AUTH_GITHUB_AUTHORIZATION_URL,
    SOCIAL_AUTH_GOOGLE_AUTHORIZATION_URL,
)

_NODE_MODULES = BASE_DIR / "node_modules"

STATICFILES_DIRS = [
    BASE_DIR / "static",
    ("vendor/htmx", _NODE_MODULES / "htmx.org" / "dist"),
    ("vendor/htmx-ext-sse", _NODE_MODULES / "htmx-ext-sse" / "dist"),
    ("vendor/xterm", _NODE_MODULES / "@xterm" / "xterm"),
    ("vendor/xterm-addon-fit", _NODE_MODULES / "@xterm" / "addon-fit" / "lib"),
]
# Serve static files straight from static/ and node_modules (no collectstatic step).
WHITENOISE_USE_FINDERS = env.bool("WHITENOISE_USE_FINDERS", default=True)
# Seconds browsers may cache static files.
WHITENOISE_MAX_AGE = env.int("WHITENOISE_MAX_AGE", default=60)


def _origin(url: str) -> str:
    scheme, _, rest = url.partition("://")
    return f"{scheme}://{rest.split('/', 1)[0]}"


CONTENT_SECURITY_POLICY = {
    # Every page, the API docs (/api/docs/) included: Swagger UI is served from here.
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF],
        "style-src": [SELF, NONCE],
        "style-src-attr": [NONE],
        "img-src": [SELF, "data:"],
        "font-src": [SELF],
        "connect-src": [SELF],
        "object-src": [NONE],
        "base-uri": [NONE],
        "frame-ancestors": [NONE],
        # The OAuth sign-in forms post here and are redirected on to the provider.
        "form-action": [
            SELF,
            _origin(SOCIAL_AUTH_GOOGLE_AUTHORIZATION_URL),
            _origin(SOCIAL_AUTH_GITHUB_AUTHORIZATION_URL),
        ],
    },
}
