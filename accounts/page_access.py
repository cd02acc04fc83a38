"""Who may see a dashboard page, and the helpers every page view shares.

A page is open to a *signed-in* browser: a Django session whose user passed the MFA step
when they have MFA on (django-otp's ``is_verified``), and whose device session (a
``UserSession``, listed on the Account page like the API's; its id is kept in the Django
session) has not been signed out: ``accounts.cookie_sessions.cookie_session_live``, the
check every path that admits a cookie makes. Revoking that device session from the Account
page or the API ends the browser session at its next request, like a revoked token.

Forms are validated by the API's own input serializers, and errors of the services
(``ApplicationError``) are shown next to the form in plain words: no rule is written twice.
"""

from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar, cast

from django.contrib.auth import logout
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_protect
from django_otp import user_has_device
from rest_framework import serializers
from rest_framework.exceptions import ValidationError

from common.errors import ApplicationError, NotFound

from .cookie_sessions import cookie_session_id, cookie_session_live, cookie_session_start
from .errors import MfaRequired
from .models import User, UserSession
from .services import staff_mfa_require

View = TypeVar("View", bound=Callable[..., HttpResponse])


def page_session_id(request: HttpRequest) -> str | None:
    """The id of the device session behind this browser's sign-in, if any."""
    return cookie_session_id(request.session)


def page_session_start(
    request: HttpRequest, user: User, *, mfa_verified: bool = False
) -> UserSession:
    """Open a new device session for this browser (``cookie_session_start``)."""
    return cookie_session_start(request, user, mfa_verified=mfa_verified)


def page_user_signed_in(request: HttpRequest) -> bool:
    """True when the browser is fully signed in (see the module docstring)."""
    user = request.user
    if not user.is_authenticated or not user.is_active:
        return False
    is_verified = getattr(user, "is_verified", None)
    if user_has_device(user) and not (is_verified is not None and is_verified()):
        return False
    return cookie_session_live(request)


def signed_in_required(view: View) -> View:
    """Pages for signed-in browsers; anyone else is sent to the sign-in page at ``/``.

    A browser whose device session was signed out elsewhere loses its Django session too.
    """

    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not page_user_signed_in(request):
            if request.user.is_authenticated:
                logout(request)
            if request.headers.get("HX-Request"):
                response = HttpResponse(status=204)
                response["HX-Redirect"] = "/"
                return response
            return HttpResponseRedirect("/")
        request.signed_in = True  # type: ignore[attr-defined]
        try:
            return view(request, *args, **kwargs)
        except NotFound as exc:
            raise Http404(exc.detail) from exc

    return cast(View, never_cache(csrf_protect(wrapper)))


def session_mfa_passed(request: HttpRequest) -> bool:
    is_verified = getattr(request.user, "is_verified", None)
    return bool(is_verified is not None and is_verified())


def staff_required(view: View) -> View:
    """Signed-in staff who passed MFA in this browser (``staff_mfa_require``); anyone else
    who is not staff gets a plain 404, as for another user's object."""

    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not request.user.is_staff:
            return HttpResponse("Not found.", status=404, content_type="text/plain")
        try:
            staff_mfa_require(user=cast(User, request.user), mfa_passed=session_mfa_passed(request))
        except MfaRequired as exc:
            context = {"message": exc.detail, "code": exc.code}
            return render(request, "accounts/admin_mfa_required.html", context, status=403)
        return view(request, *args, **kwargs)

    return signed_in_required(cast(View, wrapper))


def form_errors(exc: Exception, *, field: str = "__all__") -> dict[str, list[str]]:
    """Field -> messages for a serializer's ``ValidationError`` or a service's error.

    Errors not tied to a field are listed under ``field`` (``"__all__"``: the whole form);
    Django's validators (the password rules) give their reasons one by one.
    """
    if isinstance(exc, DjangoValidationError):
        return {field: [str(message) for message in exc.messages]}
    if isinstance(exc, ValidationError):
        detail = exc.detail
        if isinstance(detail, dict):
            return {
                ("__all__" if key == "non_field_errors" else str(key)): _messages(value)
                for key, value in detail.items()
            }
        return {"__all__": _messages(detail)}
    if isinstance(exc, ApplicationError):
        return {field: _messages(exc.detail)}
    raise exc


def _messages(value: Any) -> list[str]:
    if isinstance(value, dict):
        return [message for item in value.values() for message in _messages(item)]
    if isinstance(value, list | tuple):
        return [message for item in value for message in _messages(item)]
    return [str(value)]


def validated(serializer_class: type[serializers.Serializer], data: Any) -> dict[str, Any]:
    """``data`` checked by one of the API's input serializers (raises ``ValidationError``)."""
    serializer = serializer_class(data=data)
    serializer.is_valid(raise_exception=True)
    return dict(serializer.validated_data)
