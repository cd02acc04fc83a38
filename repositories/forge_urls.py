"""Where a forge's API and git remote are, from its kind, API URL and repository name."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

DEFAULT_API_URLS = {"github": "https://api.github.com", "gitlab": "https://gitlab.com/api/v4"}
_API_SUFFIX = re.compile(r"/api/v\d+/?$")


def default_api_url(kind: str) -> str | None:
    """The public forge's API for ``kind`` (GitHub, GitLab); None for Gitea (self-hosted)."""
    return DEFAULT_API_URLS.get(kind)


def web_base_url(kind: str, api_url: str) -> str:
    """The forge's web root: ``https://api.github.com`` -> ``https://github.com``; otherwise
    the API URL without its ``/api/v3``, ``/api/v1`` or ``/api/v4``."""
    parts = urlsplit(api_url.rstrip("/"))
    if kind == "github" and parts.hostname == "api.github.com":
        return f"{parts.scheme}://github.com"
    path = _API_SUFFIX.sub("", parts.path)
    return f"{parts.scheme}://{parts.netloc}{path}".rstrip("/")


def default_clone_url(kind: str, api_url: str, repository: str) -> str:
    """The forge repository's HTTPS clone URL (``<web root>/<owner>/<name>.git``)."""
    return f"{web_base_url(kind, api_url)}/{repository}.git"


def origin(url: str) -> tuple[str, int]:
    """(host, port) of ``url``, the port made explicit."""
    parts = urlsplit(url)
    default = {"https": 443, "http": 80, "ssh": 22}.get(parts.scheme.lower(), 0)
    return (parts.hostname or "").lower(), parts.port or default


def token_origins(kind: str, api_url: str, repository: str) -> frozenset[tuple[str, int]]:
    """Where a forge's token may be sent: its API's host and its own clone URL's host."""
    return frozenset({origin(api_url), origin(default_clone_url(kind, api_url, repository))})
