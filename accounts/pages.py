"""Dashboard pages of the accounts part: sign in (with the MFA step), sign up, sign out, Account.

Every page calls the same services as the API (``accounts.services``) and validates input
with the API's serializers; the lockout, rate limits and MFA rules are theirs. The sign-in
opens a device session (``session_start``) for the browser, so it is listed on the Account
page with the API's sessions and can be signed out from anywhere.
"""

from datetime import datetime, timedelta
from typing import Any, cast

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import authenticate, login, logout, update_session_auth_hash
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_protect
from django.views.decorators.http import require_http_methods, require_POST
from django_otp import login as otp_login
from django_otp.plugins.otp_totp.models import TOTPDevice
from rest_framework.exceptions import ValidationError

from common.errors import ApplicationError
from spending.selectors import spend_history_for_user

from . import selectors, services
from .api.serializers import PasswordChangeInput, RegisterInput
from .cookie_sessions import cookie_session_mark_mfa
from .errors import LockedOut
from .models import User, UserSession
from .page_access import (
    form_errors,
    page_session_id,
    page_session_start,
    signed_in_required,
    validated,
)
from .signals import SIGNED_IN_AT_SESSION_KEY
from .throttling import scope_hit
from .views import _PENDING_MFA

_MODEL_BACKEND = "django.contrib.auth.backends.ModelBackend"
# Days of spending the Account page lists (the API may ask for more: GET /auth/spend?days=).
ACCOUNT_SPEND_DAYS = 30


def _oauth_providers() -> list[dict[str, str]]:
    """The OAuth providers this deployment has credentials for."""
    found = []
    if settings.SOCIAL_AUTH_GOOGLE_KEY:
        found.append({"backend": "google", "label": "Sign in with Google"})
    if settings.SOCIAL_AUTH_GITHUB_KEY:
        found.append({"backend": "github", "label": "Sign in with GitHub"})
    return found


def _refused(request: HttpRequest, scope: str) -> int | None:
    """Seconds to wait when the IP's ``scope`` limit (the API's) refuses this attempt."""
    return scope_hit(request, scope)


# --- sign in ----------------------------------------------------------------------------------


def _signed_in_at(request: HttpRequest) -> datetime | None:
    raw = request.session.get(SIGNED_IN_AT_SESSION_KEY)
    return datetime.fromisoformat(raw) if raw else None


def _pending_user(request: HttpRequest) -> User | None:
    user_id = request.session.get(_PENDING_MFA)
    return User.objects.filter(pk=user_id, is_active=True).first() if user_id else None


def sign_in(request: HttpRequest) -> HttpResponse:
    """``/`` for a browser that is not signed in: the password step, then the MFA step."""
    pending = _pending_user(request)
    if pending is not None:
        return _mfa_step(request, pending)
    return _password_step(request)


def _complete_sign_in(request: HttpRequest, user: User, device: Any = None) -> None:
    login(request, user, backend=_MODEL_BACKEND)  # opens the browser's device session
    if device is not None:
        otp_login(request, device)
        cookie_session_mark_mfa(request)


def _password_step(request: HttpRequest) -> HttpResponse:
    context: dict[str, Any] = {
        "email": request.GET.get("email", "")[:254],
        "oauth_providers": _oauth_providers(),
    }
    if request.method != "POST":
        return render(request, "accounts/sign_in.html", context)
    context["email"] = request.POST.get("email", "")[:254]
    wait = _refused(request, "login")
    if wait is not None:
        context["error"] = "Too many attempts; try again shortly."
        response = render(request, "accounts/sign_in.html", context, status=429)
        response["Retry-After"] = str(wait)
        return response
    try:
        services.login_guard(email=context["email"])
    except ApplicationError as exc:
        context["error"] = exc.detail
        return render(request, "accounts/sign_in.html", context, status=exc.status_code)
    user = authenticate(request, email=context["email"], password=request.POST.get("password", ""))
    if user is None:
        services.login_failed(email=context["email"])
        context["error"] = "Invalid email or password."
        return render(request, "accounts/sign_in.html", context, status=400)
    user = cast(User, user)
    if services.user_has_mfa(user):
        # The failure count stays until the second factor passes too (as in the API).
        request.session.cycle_key()
        request.session[_PENDING_MFA] = user.pk
        return HttpResponseRedirect("/")
    services.login_lockout_clear(email=context["email"])
    _complete_sign_in(request, user)
    return HttpResponseRedirect("/")


def _mfa_step(request: HttpRequest, user: User) -> HttpResponse:
    context: dict[str, Any] = {"pending_email": user.email}
    if request.method != "POST":
        return render(request, "accounts/mfa_step.html", context)
    if request.POST.get("cancel"):
        request.session.flush()
        return HttpResponseRedirect("/")
    wait = _refused(request, "login")
    if wait is not None:
        context["error"] = "Too many attempts; try again shortly."
        response = render(request, "accounts/mfa_step.html", context, status=429)
        response["Retry-After"] = str(wait)
        return response
    try:
        services.login_guard(email=user.email)
    except ApplicationError as exc:
        context["error"] = exc.detail
        return render(request, "accounts/mfa_step.html", context, status=exc.status_code)
    device = services.second_factor_device(user=user, code=request.POST.get("code", ""))
    if device is None:
        services.login_failed(email=user.email)
        context["error"] = "The code is not valid."
        return render(request, "accounts/mfa_step.html", context, status=400)
    services.login_lockout_clear(email=user.email)
    del request.session[_PENDING_MFA]
    _complete_sign_in(request, user, device)
    return HttpResponseRedirect("/")


# --- sign up, sign out ------------------------------------------------------------------------


@never_cache
@csrf_protect
@require_http_methods(["GET", "POST"])
def sign_up(request: HttpRequest) -> HttpResponse:
    """Create an account (the API's registration service and password rules)."""
    context: dict[str, Any] = {"values": {}, "errors": {}}
    if request.method != "POST":
        return render(request, "accounts/sign_up.html", context)
    context["values"] = {
        "username": request.POST.get("username", "")[:150],
        "email": request.POST.get("email", "")[:254],
    }
    wait = _refused(request, "register")
    if wait is not None:
        context["errors"] = {"__all__": ["Too many sign-ups from here; try again shortly."]}
        response = render(request, "accounts/sign_up.html", context, status=429)
        response["Retry-After"] = str(wait)
        return response
    try:
        data = validated(RegisterInput, request.POST)
        user = services.user_register(**data)
    except ValidationError as exc:
        context["errors"] = form_errors(exc)
        return render(request, "accounts/sign_up.html", context, status=400)
    except ApplicationError as exc:
        field = {"email_taken": "email", "username_taken": "username"}.get(exc.code, "__all__")
        context["errors"] = form_errors(exc, field=field)
        return render(request, "accounts/sign_up.html", context, status=400)
    except DjangoValidationError as exc:  # the password validators
        context["errors"] = form_errors(exc, field="password")
        return render(request, "accounts/sign_up.html", context, status=400)
    messages.success(request, "Your account is ready. Sign in with your email and password.")
    return HttpResponseRedirect(f"/?email={user.email}")


@require_POST
@csrf_protect
def sign_out(request: HttpRequest) -> HttpResponse:
    """Sign this browser out: the Django session ends and its device session is revoked
    (``accounts.cookie_sessions``), closing the streams and terminals it opened."""
    logout(request)
    return HttpResponseRedirect("/")


# --- Account ----------------------------------------------------------------------------------


def _account_context(request: HttpRequest, **extra: Any) -> dict[str, Any]:
    user = cast(User, request.user)
    sid = page_session_id(request)
    sessions = [
        {"session": session, "current": str(session.pk) == sid}
        for session in selectors.session_list_for_user(user=user)
    ]
    pending_setup = (
        not services.user_has_mfa(user)
        and TOTPDevice.objects.filter(user=user, confirmed=False).exists()
    )
    return {
        "nav": "account",
        "unverified_until": (
            None
            if user.email_verified
            else user.date_joined + timedelta(days=settings.ACCOUNTS_UNVERIFIED_DAYS)
        ),
        "mfa_enabled": services.user_has_mfa(user),
        "mfa_pending": pending_setup,
        "sessions": sessions,
        "spend": spend_history_for_user(
            user=user, days=min(ACCOUNT_SPEND_DAYS, int(settings.SPEND_HISTORY_MAX_DAYS))
        ),
        "errors": {},
        **extra,
    }


def _account(request: HttpRequest, status: int = 200, **extra: Any) -> HttpResponse:
    return render(
        request, "accounts/account.html", _account_context(request, **extra), status=status
    )


@signed_in_required
@require_http_methods(["GET"])
def account(request: HttpRequest) -> HttpResponse:
    """Account: two-factor set-up, backup codes, devices signed in, password, spending."""
    return _account(request)


@signed_in_required
@require_POST
def mfa_setup(request: HttpRequest) -> HttpResponse:
    """Start TOTP enrolment: the QR code and secret, and the confirm form."""
    try:
        setup = services.mfa_totp_setup(user=cast(User, request.user))
    except ApplicationError as exc:
        return _account(request, status=exc.status_code, errors={"mfa": [exc.detail]})
    return _account(request, setup=setup, mfa_pending=True)


@signed_in_required
@require_POST
def mfa_confirm(request: HttpRequest) -> HttpResponse:
    """Finish enrolment with a first code and the password; the backup codes, shown once."""
    user = cast(User, request.user)
    sid = page_session_id(request)
    current = UserSession.objects.filter(pk=sid, user=user).first() if sid else None
    try:
        codes = services.mfa_totp_confirm(
            user=user,
            code=request.POST.get("code", ""),
            password=request.POST.get("password", ""),
            signed_in_at=_signed_in_at(request),
            current_session=current,
        )
    except ApplicationError as exc:
        field = "confirm_code" if exc.code == "invalid_code" else "confirm_password"
        return _account(request, status=exc.status_code, errors={field: [exc.detail]})
    # The other sessions were signed out (the session epoch moved); this browser stays in.
    update_session_auth_hash(request, user)
    device = TOTPDevice.objects.filter(user=user, confirmed=True).order_by("-id").first()
    otp_login(request, device)  # this browser just proved the new device
    return _account(request, backup_codes=codes)


@signed_in_required
@require_POST
def backup_codes_regenerate(request: HttpRequest) -> HttpResponse:
    """New backup codes (the old ones stop working), after a code."""
    try:
        codes = services.mfa_backup_codes_regenerate(
            user=cast(User, request.user), code=request.POST.get("code", "")
        )
    except ApplicationError as exc:
        return _account(request, status=400, errors={"regenerate_code": [exc.detail]})
    return _account(request, backup_codes=codes)


@signed_in_required
@require_POST
def mfa_disable(request: HttpRequest) -> HttpResponse:
    """Turn MFA off after a code; every session is signed out, this browser signs in anew."""
    user = cast(User, request.user)
    try:
        services.mfa_disable(user=user, code=request.POST.get("code", ""))
    except ApplicationError as exc:
        return _account(request, status=400, errors={"disable_code": [exc.detail]})
    update_session_auth_hash(request, user)  # this browser stays, on a new device session
    page_session_start(request, user)
    messages.success(request, "Two-factor authentication is off; other devices were signed out.")
    return HttpResponseRedirect(reverse("page-account"))


@signed_in_required
@require_POST
def session_sign_out(request: HttpRequest, session_id: str) -> HttpResponse:
    """Sign one device out (its tokens stop working at once); this browser, when it is it."""
    session = selectors.session_get_for_user(user=cast(User, request.user), session_id=session_id)
    services.session_revoke(session=session, reason="signed_out_by_user")
    if str(session.pk) == page_session_id(request):
        logout(request)
        return HttpResponseRedirect("/")
    messages.success(request, f"Signed out {session.device or 'that device'}.")
    return HttpResponseRedirect(reverse("page-account"))


@signed_in_required
@require_POST
def email_verification_resend(request: HttpRequest) -> HttpResponse:
    """Mail the verification link again (the API's per-user limit)."""
    wait = _refused(request, "verify_email")
    if wait is not None:
        message = "Too many links asked for; try again later."
        response = _account(request, status=429, errors={"verify": [message]})
        response["Retry-After"] = str(wait)
        return response
    try:
        services.email_verification_resend(user=cast(User, request.user))
    except ApplicationError as exc:
        return _account(request, status=exc.status_code, errors={"verify": [exc.detail]})
    messages.success(request, "The link is on its way: open it and confirm with your password.")
    return HttpResponseRedirect(reverse("page-account"))


@signed_in_required
@require_POST
def password_change(request: HttpRequest) -> HttpResponse:
    """Change the password; every session is signed out, this browser signs in anew."""
    user = cast(User, request.user)
    try:
        data = validated(PasswordChangeInput, request.POST)
        services.user_password_change(user=user, **data)
    except ValidationError as exc:
        return _account(request, status=400, errors=_prefixed(form_errors(exc)))
    except LockedOut as exc:  # too many wrong passwords (sign-ins and this form together)
        response = _account(request, status=429, errors={"password_form": [exc.detail]})
        response["Retry-After"] = str(exc.extra.get("retry_after", 60))
        return response
    except ApplicationError as exc:
        return _account(request, status=400, errors={"current_password": [exc.detail]})
    except DjangoValidationError as exc:  # the password validators
        return _account(request, status=400, errors=form_errors(exc, field="new_password"))
    update_session_auth_hash(request, user)
    page_session_start(request, user)
    messages.success(request, "Password changed; every other device was signed out.")
    return HttpResponseRedirect(reverse("page-account"))


def _prefixed(errors: dict[str, list[str]]) -> dict[str, list[str]]:
    return {("password_form" if key == "__all__" else key): value for key, value in errors.items()}
