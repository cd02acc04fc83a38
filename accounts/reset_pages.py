"""The password-reset pages: ask for a link by email, then choose a new password.

Django's own ``PasswordResetConfirmView`` checks the mailed link (its token goes into the
session and out of the address bar before the form shows, so no Referer carries it) and
validates the new password with Django's ``SetPasswordForm``; the reset itself is the
API's service (``password_reset_complete``): every session of the account ends.
"""

from typing import Any, cast

from django.contrib import messages
from django.contrib.auth.views import INTERNAL_RESET_SESSION_TOKEN, PasswordResetConfirmView
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_protect
from django.views.decorators.http import require_http_methods

from common.errors import ApplicationError

from . import services
from .models import User
from .throttling import scope_hit


@never_cache
@csrf_protect
@require_http_methods(["GET", "POST"])
def password_reset_request_page(request: HttpRequest) -> HttpResponse:
    """Ask for a reset link; every address gets the same answer (no account is revealed)."""
    context: dict[str, Any] = {"email": request.GET.get("email", "")[:254]}
    if request.method != "POST":
        return render(request, "accounts/password_reset.html", context)
    context["email"] = request.POST.get("email", "")[:254]
    try:
        wait = scope_hit(request, "password_reset")
    except ApplicationError as exc:
        context["error"] = exc.detail
        return render(request, "accounts/password_reset.html", context, status=exc.status_code)
    if wait is not None:
        context["error"] = "Too many reset requests from here; try again later."
        response = render(request, "accounts/password_reset.html", context, status=429)
        response["Retry-After"] = str(wait)
        return response
    services.password_reset_request(email=context["email"])
    return render(request, "accounts/password_reset.html", {**context, "sent": True})


class PasswordResetConfirmPage(PasswordResetConfirmView):
    """The mailed link: a new password, then sign in with it (every device signed out)."""

    template_name = "accounts/password_reset_confirm.html"

    def form_valid(self, form: Any) -> HttpResponse:
        user = cast(User, self.user)  # dispatch checked the link: the user is known
        services.password_reset_complete(user=user, new_password=form.cleaned_data["new_password1"])
        del self.request.session[INTERNAL_RESET_SESSION_TOKEN]
        messages.success(
            self.request,
            "Your password is changed and every device was signed out. Sign in with it now.",
        )
        return HttpResponseRedirect(f"/?email={user.email}")
