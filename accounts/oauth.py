"""OAuth 2.0 with Google and GitHub (social-auth-app-django): backends and pipeline steps.

Both backends use PKCE (S256) and the state parameter; their endpoints come from settings so a
self-hosted or test provider can stand in. An identity is linked to an existing account only
when both sides vouch for the email: the provider verified it, and the account's owner proved
it through the link we mailed (``User.email_verified_at``). Otherwise anyone could register
someone else's address with a password and wait for its owner to sign in with a provider.
The first identity linked to an account with a password also waits for that password, once
(``confirm_first_link``). Linking ends every other session of the account.
"""

import re
import secrets
from typing import Any

from django.contrib.auth import update_session_auth_hash
from django.urls import reverse
from django.utils import timezone
from social_core.backends.github import GithubOAuth2 as _GithubOAuth2
from social_core.backends.google import GoogleOAuth2 as _GoogleOAuth2
from social_core.backends.oauth import BaseOAuth2PKCE
from social_core.exceptions import AuthPolicyError
from social_core.pipeline.partial import partial
from social_django.models import UserSocialAuth

from common.logging import get_logger

from .cookie_sessions import cookie_session_id
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


class AccountEmailUnverified(AuthPolicyError):
    """The identity would be linked to an account whose owner never verified its email.

    ``message`` is for the person signing in: what happened and what to do.
    """

    def __init__(self, backend: Any, *, email: str) -> None:
        super().__init__(backend, stage="pipeline")
        provider = str(getattr(backend, "name", "the provider")).title()
        self.message = (
            f"An account with the address {email} already exists, but that address has not "
            f"been verified, so it cannot be signed in to with {provider}. Sign in with the "
            "account's password and follow the verification link we emailed (you can ask for "
            f"a new one once signed in); {provider} sign-in will work after that."
        )


def associate_by_verified_email(
    backend: Any,
    details: dict[str, Any],
    response: dict[str, Any],
    user: Any = None,
    social: Any = None,
    **_: Any,
) -> dict[str, Any] | None:
    """Link to the account with the same (canonical) email, when both the provider and the
    account's owner verified it; an unverified account is refused, never linked.

    With a signed-in user (connecting a provider to their own account), that account's
    email must be verified too: the rule is the same whoever starts the flow.
    """
    if user is not None:
        if social is None and not user.email_verified:
            raise AccountEmailUnverified(backend, email=user.email)
        return None
    email = (details.get("email") or "").strip()
    verified = bool(getattr(backend, "email_is_verified", lambda _: False)(response))
    if not email or not verified:
        raise AuthPolicyError(backend, stage="callback")
    existing = User.objects.with_email(email).first()
    if existing is None:
        return None
    if not existing.email_verified:
        logger.info("accounts.oauth.link_refused_unverified", backend=backend.name)
        raise AccountEmailUnverified(backend, email=existing.email)
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
    """A new account for a verified email no account has yet (no usable password).

    The provider vouched for the address, so the account starts verified.
    """
    if user is not None:
        return None
    email = details["email"].strip().lower()
    username = _free_username(details.get("username") or email.split("@")[0])
    new = User.objects.create_user(username=username, email=email, email_verified_at=timezone.now())
    logger.info("accounts.oauth.user_created", backend=backend.name, user_id=new.id)
    return {"user": new, "is_new": True}


def refuse_inactive(backend: Any, user: Any = None, **_: Any) -> None:
    """A deactivated account never signs in through a provider (nor gets one linked)."""
    if user is not None and not user.is_active:
        raise AuthPolicyError(backend, stage="callback")


#: Pipeline data of a sign-in paused until the account's password is given (its nonce).
LINK_PENDING_KWARG = "accounts_link_needs_password"
#: The browser session's note that the password was given for that nonce.
LINK_CONFIRMED_SESSION_KEY = "accounts_oauth_link_confirmed"


@partial
def confirm_first_link(
    strategy: Any,
    backend: Any,
    user: Any = None,
    social: Any = None,
    is_new: bool = False,
    current_partial: Any = None,
    **kwargs: Any,
) -> Any:
    """Pause before the first provider identity is linked to an account that has a password,
    until that password is given once (``views.oauth_link_confirm``, counted like a sign-in).

    The provider vouches for its own user only: the account's password is what shows that
    its holder wants that identity in, whoever verified the address and however (a signed-in
    session does not show it either: it may be a stolen one). Accounts made through a
    provider have no password, and an account with a provider already linked has given it.
    """
    if user is None or is_new or social is not None or not user.has_usable_password():
        return None
    if UserSocialAuth.objects.filter(user=user).exists():
        return None
    nonce = kwargs.get(LINK_PENDING_KWARG)
    if nonce and strategy.session_get(LINK_CONFIRMED_SESSION_KEY) == nonce:
        strategy.session_pop(LINK_CONFIRMED_SESSION_KEY)
        return None
    current_partial.extend_kwargs({LINK_PENDING_KWARG: secrets.token_urlsafe(24)})
    logger.info("accounts.oauth.link_needs_password", backend=backend.name, user_id=user.pk)
    return strategy.redirect(reverse("oauth-link-confirm"))


def revoke_sessions_on_link(
    backend: Any, user: Any = None, is_new: bool = False, new_association: bool = False, **_: Any
) -> dict[str, Any] | None:
    """A provider identity newly linked to an existing account ends its other sessions.

    Whoever held a session before the link (device tokens or the dashboard) signs in again;
    the sign-in this flow is completing starts after it, with the user's new session epoch.
    """
    if user is None or is_new or not new_association:
        return None
    from .services import user_sessions_revoke_all

    request: Any = getattr(backend.strategy, "request", None)
    current: Any = getattr(request, "user", None)
    connecting = current is not None and current.is_authenticated and current.pk == user.pk
    # A signed-in user connecting a provider keeps the browser session doing it.
    keep_sid = cookie_session_id(request.session) if connecting else None
    user_sessions_revoke_all(user=user, reason="oauth_linked", keep_sid=keep_sid)
    if connecting:
        update_session_auth_hash(request, user)
    logger.info("accounts.oauth.linked", backend=backend.name, user_id=user.id)
    return {"user": user}
