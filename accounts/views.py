"""Browser views: OAuth begin/complete (social-auth), the password asked once before a first
provider is linked to an account, and the email verification link. The dashboard pages are
in ``pages``.

OAuth begin is a CSRF-protected POST (a GET renders the form that posts it). Completion signs
the dashboard session in (after the MFA step when the user has MFA on) and, when an API client
started the flow with a ``client_redirect`` and its PKCE ``code_challenge`` (required with a
redirect), sends it back there with a one-time code it trades at ``POST /auth/oauth/exchange``
with its ``code_verifier``: tokens never travel in a URL, and a stolen code is worth nothing.
"""

import re
from typing import Any, cast
from urllib.parse import urlencode, urlsplit

from django.conf import settings
from django.contrib.auth import login
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt, csrf_protect
from django.views.decorators.http import require_http_methods
from social_core.actions import do_auth, do_complete
from social_core.exceptions import SocialAuthBaseException
from social_core.utils import PARTIAL_TOKEN_SESSION_NAME
from social_django.models import Partial
from social_django.utils import psa

from common.errors import ApplicationError
from common.logging import get_logger

from . import services
from .models import User
from .oauth import LINK_CONFIRMED_SESSION_KEY, LINK_PENDING_KWARG, AccountEmailUnverified
from .page_access import page_user_signed_in
from .throttling import scope_hit

logger = get_logger(__name__)

_CLIENT_REDIRECT = "accounts_oauth_client_redirect"
_EXCHANGE_CODE = "accounts_oauth_exchange_code"
_CLIENT_CHALLENGE = "accounts_oauth_client_challenge"
_PENDING_MFA = "accounts_pending_mfa_user"
_CHALLENGE = re.compile(r"[A-Za-z0-9_-]{43}")
_LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "[::1]", "::1"}


def _client_redirect_allowed(url: str) -> bool:
    """Loopback redirect URIs (RFC 8252) or ones configured in ACCOUNTS_OAUTH_CLIENT_REDIRECTS."""
    parts = urlsplit(url)
    if parts.scheme == "http" and (parts.hostname or "") in _LOOPBACK_HOSTS:
        return True
    return any(url == allowed for allowed in settings.ACCOUNTS_OAUTH_CLIENT_REDIRECTS)


def _error(request: HttpRequest, message: str, status: int = 400) -> HttpResponse:
    return render(request, "accounts/error.html", {"message": message}, status=status)


@never_cache
@csrf_protect
@require_http_methods(["GET", "POST"])
@psa("oauth-complete")
def oauth_begin(request: HttpRequest, backend: str) -> HttpResponse:
    """GET: a page whose form POSTs here. POST (CSRF checked): off to the provider."""
    source: Any = request.POST if request.method == "POST" else request.GET
    client_redirect = source.get("client_redirect", "")
    code_challenge = source.get("code_challenge", "")
    if client_redirect and not _client_redirect_allowed(client_redirect):
        return _error(request, "That client redirect URI is not allowed.")
    if client_redirect and not code_challenge:
        return _error(
            request,
            "A client_redirect needs a PKCE code_challenge (S256 of the client's code_verifier).",
        )
    if code_challenge and not _CHALLENGE.fullmatch(code_challenge):
        return _error(request, "code_challenge must be an S256 challenge (43 base64url chars).")
    if request.method == "GET":
        context = {
            "backend": request.backend,  # type: ignore[attr-defined]
            "client_redirect": client_redirect,
            "code_challenge": code_challenge,
        }
        return render(request, "accounts/oauth_begin.html", context)
    wait = scope_hit(request, "oauth")
    if wait is not None:
        response = _error(request, "Too many sign-in attempts; try again shortly.", 429)
        response["Retry-After"] = str(wait)
        return response
    request.session[_CLIENT_REDIRECT] = client_redirect or None
    request.session[_CLIENT_CHALLENGE] = code_challenge
    return do_auth(request.backend, redirect_name="next")  # type: ignore[attr-defined]


def _sign_in(request: HttpRequest, user: User, backend_path: str) -> None:
    """Log the dashboard in, or park the user before the MFA step when MFA is on."""
    if services.user_has_mfa(user):
        request.session.cycle_key()
        request.session[_PENDING_MFA] = user.pk
        return
    login(request, user, backend=backend_path)


def _social_login(backend: Any, user: User, social_user: Any) -> None:
    request = backend.strategy.request
    _sign_in(request, user, f"{backend.__module__}.{backend.__class__.__name__}")
    if request.session.get(_CLIENT_REDIRECT):
        request.session[_EXCHANGE_CODE] = services.oauth_exchange_code_create(
            user=user, code_challenge=request.session.pop(_CLIENT_CHALLENGE, "") or ""
        )


@never_cache
@csrf_exempt  # the provider's redirect; the state parameter is what binds it to our begin
@require_http_methods(["GET"])
@psa("oauth-complete")
def oauth_complete(request: HttpRequest, backend: str) -> HttpResponse:
    """The provider's callback: state and PKCE checked by social-core, then sign-in."""
    try:
        response = do_complete(
            request.backend,  # type: ignore[attr-defined]
            _social_login,
            user=request.user,  # type: ignore[arg-type]
            redirect_name="next",
            request=request,
        )
    except AccountEmailUnverified as exc:
        logger.info("accounts.oauth.refused", backend=backend, reason="account_email_unverified")
        return _error(request, exc.message, 403)
    except SocialAuthBaseException as exc:
        logger.info("accounts.oauth.refused", backend=backend, reason=exc.__class__.__name__)
        return _error(request, "Sign-in with the provider failed or was refused.")
    # A sign-in paused for the account's password (``oauth.confirm_first_link``) comes back
    # here to finish: what the API client asked for waits in the session until then.
    code = request.session.pop(_EXCHANGE_CODE, None)
    client_redirect = request.session.pop(_CLIENT_REDIRECT, None) if code else None
    if client_redirect and code:
        separator = "&" if "?" in client_redirect else "?"
        return HttpResponseRedirect(f"{client_redirect}{separator}{urlencode({'code': code})}")
    if request.session.get(_PENDING_MFA):
        return HttpResponseRedirect("/")
    return response


# --- Email verification link ----------------------------------------------------------------


def _verify_page(request: HttpRequest, status: int = 200, **context: Any) -> HttpResponse:
    context.setdefault("unverified_days", settings.ACCOUNTS_UNVERIFIED_DAYS)
    return render(request, "accounts/email_verify.html", context, status=status)


@never_cache
@csrf_protect
@require_http_methods(["GET", "POST"])
def email_verify_page(request: HttpRequest, token: str) -> HttpResponse:
    """The link mailed at registration: a GET only shows a form (mail scanners follow
    links); the POST verifies, with the account's password or from a browser signed in to
    the account (``services.email_verify``)."""
    try:
        account = services.email_verification_claim(token=token)
    except ApplicationError as exc:
        return _verify_page(request, 400, state="invalid", message=exc.detail)
    if account.email_verified:
        message = "This verification link was already used; the address is verified."
        return _verify_page(request, state="verified", message=message)
    signed_in = page_user_signed_in(request) and request.user.pk == account.pk
    context: dict[str, Any] = {
        "state": "confirm",
        "account_email": account.email,
        "signed_in_as_account": signed_in,
    }
    if request.method != "POST":
        return _verify_page(request, **context)
    try:
        user = services.email_verify(
            token=token,
            password=request.POST.get("password", "")[:256],
            signed_in_user=cast(User, request.user) if signed_in else None,
        )
    except ApplicationError as exc:
        if exc.code == "verification_link_used":
            return _verify_page(request, state="verified", message=exc.detail)
        response = _verify_page(request, exc.status_code, error=exc.detail, **context)
        if "retry_after" in exc.extra:
            response["Retry-After"] = str(exc.extra["retry_after"])
        return response
    message = f"{user.email} is verified. You can now also sign in with a provider using it."
    return _verify_page(request, state="verified", message=message)


# --- The first provider linked to an account with a password ---------------------------------


def _pending_link(request: HttpRequest) -> tuple[Any, User] | None:
    """The paused OAuth sign-in of this browser that waits for the account's password."""
    token = request.session.get(PARTIAL_TOKEN_SESSION_NAME)
    partial: Any = Partial.objects.filter(token=token).first() if token else None
    if partial is None or not partial.data.get("kwargs", {}).get(LINK_PENDING_KWARG):
        return None
    user = User.objects.filter(pk=partial.data["kwargs"].get("user"), is_active=True).first()
    return (partial, user) if user is not None else None


@never_cache
@csrf_protect
@require_http_methods(["GET", "POST"])
def oauth_link_confirm(request: HttpRequest) -> HttpResponse:
    """The account's password, once, before a first provider identity is linked to it.

    The sign-in with the provider paused before linking (``oauth.confirm_first_link``);
    the right password lets it go on, a wrong one counts as a failed sign-in.
    """
    pending = _pending_link(request)
    if pending is None:
        return _error(request, "There is no sign-in waiting for a password here.", 404)
    partial, user = pending
    context: dict[str, Any] = {
        "account_email": user.email,
        "provider": str(partial.backend).title(),
    }
    if request.method == "POST":
        try:
            services.account_password_check(
                user=user, password=request.POST.get("password", "")[:256]
            )
        except ApplicationError as exc:
            context["error"] = exc.detail
            return render(request, "accounts/oauth_link.html", context, status=exc.status_code)
        request.session[LINK_CONFIRMED_SESSION_KEY] = partial.data["kwargs"][LINK_PENDING_KWARG]
        query = urlencode({"partial_token": partial.token})
        return HttpResponseRedirect(f"{reverse('oauth-complete', args=[partial.backend])}?{query}")
    return render(request, "accounts/oauth_link.html", context)
