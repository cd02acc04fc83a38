"""OAuth 2.0 with Google and GitHub (social-auth-app-django): backends and pipeline steps.

Both backends use PKCE (S256) and the state parameter; their endpoints come from settings so a
self-hosted or test provider can stand in. Accounts are linked by *verified* email only.
"""

import re
import secrets
from typing import Any

from social_core.backends.github import GithubOAuth2 as _GithubOAuth2
from social_core.backends.google import GoogleOAuth2 as _GoogleOAuth2
from social_core.backends.oauth import BaseOAuth2PKCE
from social_core.exceptions import AuthPolicyError

from common.logging import get_logger

from .models import User

logger = get_logger(__name__)


class GoogleOAuth2(_GoogleOAuth2, BaseOAuth2PKCE):
    """Google (OpenID Connect user info); Google must vouch for the email."""

    name = "google"
    USERINFO_URL = "https://openidconnect.googleapis.com/v1/userinfo"

    def user_data(self, access_token: str, *args: Any, **kwargs: Any) -> dict[str, Any] | None:
        response = self.get_json(
            self.setting("USERINFO_URL", self.USERINFO_URL),
            headers={"Authorization": f"Bearer {access_token}"},
        )
        self.validate_email_verified(response)
        return response

    def email_is_verified(self, response: dict[str, Any]) -> bool:
        return response.get("email_verified") is True


class GithubOAuth2(_GithubOAuth2, BaseOAuth2PKCE):
    """GitHub; the email used is the primary *verified* one from ``/user/emails``."""

    def api_url(self) -> str:
        url = str(self.setting("API_URL", self.API_URL))
        return url if url.endswith("/") else f"{url}/"

    def user_data(self, access_token: str, *args: Any, **kwargs: Any) -> dict[str, Any] | None:
        data = self._user_data(access_token)
        emails = self._user_data(access_token, "/emails")
        primary = next(
            (
                e
                for e in emails or []
                if isinstance(e, dict) and e.get("primary") and e.get("verified")
            ),
            None,
        )
        data["email"] = primary["email"] if primary else ""
        data["email_verified"] = primary is not None
        return data

    def email_is_verified(self, response: dict[str, Any]) -> bool:
        return response.get("email_verified") is True


def associate_by_verified_email(
    backend: Any, details: dict[str, Any], response: dict[str, Any], user: Any = None, **_: Any
) -> dict[str, Any] | None:
    """Link to the account with the same email, only when the provider verified that email."""
    if user is not None:
        return None
    email = (details.get("email") or "").strip()
    verified = bool(getattr(backend, "email_is_verified", lambda _: False)(response))
    if not email or not verified:
        raise AuthPolicyError(backend, stage="callback")
    existing = User.objects.filter(email__iexact=email).first()
    if existing is None:
        return None
    logger.info("accounts.oauth.linked", backend=backend.name, user_id=existing.id)
    return {"user": existing, "is_new": False}


def _free_username(wanted: str) -> str:
    base = re.sub(r"[^\w.@+-]", "", wanted)[:140] or "user"
    candidate = base
    while User.objects.filter(username__iexact=candidate).exists():
        candidate = f"{base}-{secrets.token_hex(3)}"
    return candidate


def create_user(
    backend: Any, details: dict[str, Any], user: Any = None, **_: Any
) -> dict[str, Any] | None:
    """A new account for a verified email no account has yet (no usable password)."""
    if user is not None:
        return None
    email = details["email"].strip().lower()
    username = _free_username(details.get("username") or email.split("@")[0])
    new = User.objects.create_user(username=username, email=email)
    logger.info("accounts.oauth.user_created", backend=backend.name, user_id=new.id)
    return {"user": new, "is_new": True}


def refuse_inactive(backend: Any, user: Any = None, **_: Any) -> None:
    """A deactivated account never signs in through a provider."""
    if user is not None and not user.is_active:
        raise AuthPolicyError(backend, stage="callback")
