"""The auth API: views parse input, call one service, serialize the answer."""

from datetime import datetime
from typing import Any, cast

from django.contrib.auth import logout, update_session_auth_hash
from django_otp import login as otp_login
from django_otp.plugins.otp_totp.models import TOTPDevice
from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.exceptions import AuthenticationFailed, PermissionDenied
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from .. import selectors, services
from ..authentication import OTPSessionAuthentication, SessionJWTAuthentication
from ..errors import AuthenticationError
from ..models import User, UserSession
from ..revocation import request_sid
from ..services import LoginResult
from ..signals import SIGNED_IN_AT_SESSION_KEY
from ..throttling import client_ip_address
from . import serializers as s


def _user(request: Request) -> User:
    """The authenticated user (the default IsAuthenticated permission has run)."""
    return cast(User, request.user)


def _user_agent(request: Request) -> str:
    return request.META.get("HTTP_USER_AGENT", "")[:512]


def _login_body(result: LoginResult) -> dict[str, Any]:
    if result.mfa_token is not None:
        return {"mfa_required": True, "mfa_token": result.mfa_token}
    assert result.pair is not None  # noqa: S101  (a LoginResult holds one or the other)
    return {**result.pair.as_dict(), "user": s.UserOutput(result.user).data}


class _Public(APIView):
    """An unauthenticated endpoint (a stale Authorization header must not get in the way)."""

    authentication_classes: list = []
    permission_classes = [AllowAny]


class RegisterView(_Public):
    throttle_scope = "register"

    @extend_schema(request=s.RegisterInput, responses={201: s.RegisteredOutput})
    def post(self, request: Request) -> Response:
        data = s.RegisterInput(data=request.data)
        data.is_valid(raise_exception=True)
        user = services.user_register(**data.validated_data)
        return Response(s.RegisteredOutput(user).data, status=status.HTTP_201_CREATED)


class LoginView(_Public):
    throttle_scope = "login"

    @extend_schema(request=s.LoginInput, responses={200: dict})
    def post(self, request: Request) -> Response:
        data = s.LoginInput(data=request.data)
        data.is_valid(raise_exception=True)
        result = services.auth_login(
            **data.validated_data, ip=client_ip_address(request), user_agent=_user_agent(request)
        )
        return Response(_login_body(result))


class MfaVerifyView(_Public):
    throttle_scope = "mfa"

    @extend_schema(request=s.MfaVerifyInput, responses={200: dict})
    def post(self, request: Request) -> Response:
        data = s.MfaVerifyInput(data=request.data)
        data.is_valid(raise_exception=True)
        user, pair = services.mfa_login_verify(
            **data.validated_data, ip=client_ip_address(request), user_agent=_user_agent(request)
        )
        return Response({**pair.as_dict(), "user": s.UserOutput(user).data})


class RefreshView(_Public):
    throttle_scope = "refresh"

    @extend_schema(request=s.RefreshInput, responses={200: dict})
    def post(self, request: Request) -> Response:
        data = s.RefreshInput(data=request.data)
        data.is_valid(raise_exception=True)
        pair = services.session_refresh(
            refresh=data.validated_data["refresh"], ip=client_ip_address(request)
        )
        return Response(pair.as_dict())


class _OptionalTokenAuthentication(SessionJWTAuthentication):
    """A bearer token when it is good; a stale one is no sign-in, never an error."""

    def authenticate(self, request: Request) -> Any:
        try:
            return super().authenticate(request)
        except AuthenticationFailed:
            return None


class _OptionalCookieAuthentication(OTPSessionAuthentication):
    """A live dashboard cookie with its CSRF token; without the token, no sign-in (noted)."""

    def authenticate(self, request: Request) -> Any:
        try:
            return super().authenticate(request)
        except PermissionDenied:
            request.csrf_refused = True  # type: ignore[attr-defined]
            return None


# The OpenAPI security of an endpoint that takes a token or a cookie, or neither.
_OPTIONAL_AUTH: list[Any] = [{"jwtAuth": []}, {"cookieAuth": []}, {}]


class LogoutView(APIView):
    """Sign one device out: the session of the ``refresh`` token sent, or, without one, the
    session of this request (its bearer token, or its dashboard cookie, CSRF checked)."""

    authentication_classes = [_OptionalTokenAuthentication, _OptionalCookieAuthentication]
    permission_classes = [AllowAny]
    throttle_scope = "refresh"

    @extend_schema(request=s.LogoutInput, responses={204: None}, auth=_OPTIONAL_AUTH)
    def post(self, request: Request) -> Response:
        data = s.LogoutInput(data=request.data)
        data.is_valid(raise_exception=True)
        if data.validated_data.get("refresh"):
            services.session_logout(refresh=data.validated_data["refresh"])
        elif (session := getattr(request, "auth_session", None)) is not None:
            services.session_revoke(session=session, reason="logout")
        elif request.user is not None and request.user.is_authenticated:
            logout(request._request)  # revokes the cookie's device session too
        elif getattr(request, "csrf_refused", False):
            raise PermissionDenied("CSRF token missing or incorrect.")
        else:
            raise AuthenticationError(
                "Send the refresh token of the session to sign out, or sign in.",
                code="not_authenticated",
            )
        return Response(status=status.HTTP_204_NO_CONTENT)


class MeView(APIView):
    @extend_schema(responses={200: s.UserOutput})
    def get(self, request: Request) -> Response:
        return Response(s.UserOutput(request.user).data)


class PasswordChangeView(APIView):
    throttle_scope = "login"

    @extend_schema(request=s.PasswordChangeInput, responses={204: None})
    def post(self, request: Request) -> Response:
        data = s.PasswordChangeInput(data=request.data)
        data.is_valid(raise_exception=True)
        services.user_password_change(user=_user(request), **data.validated_data)
        return Response(status=status.HTTP_204_NO_CONTENT)


def _current_sid(request: Request) -> str | None:
    return request_sid(request) or None


class SessionListView(APIView):
    @extend_schema(responses={200: s.SessionOutput(many=True)})
    def get(self, request: Request) -> Response:
        sessions = selectors.session_list_for_user(user=_user(request))
        context = {"current_sid": _current_sid(request)}
        return Response(s.SessionOutput(sessions, many=True, context=context).data)


class SessionDetailView(APIView):
    @extend_schema(responses={204: None})
    def delete(self, request: Request, session_id: str) -> Response:
        session = selectors.session_get_for_user(user=_user(request), session_id=session_id)
        services.session_revoke(session=session, reason="signed_out_by_user")
        return Response(status=status.HTTP_204_NO_CONTENT)


class TotpSetupView(APIView):
    @extend_schema(request=None, responses={200: dict})
    def post(self, request: Request) -> Response:
        return Response(services.mfa_totp_setup(user=_user(request)))


def _current_session(request: Request) -> UserSession | None:
    """The device session of the request: its token's, or the one behind its cookie."""
    session = getattr(request, "auth_session", None)
    if session is not None:
        return cast(UserSession, session)
    sid = request_sid(request)
    return UserSession.objects.filter(pk=sid, user=_user(request)).first() if sid else None


def _dashboard_signed_in_at(request: Request) -> datetime | None:
    """When the dashboard (cookie) session of this request signed in, if it says."""
    raw = request._request.session.get(SIGNED_IN_AT_SESSION_KEY)
    try:
        return datetime.fromisoformat(raw) if raw else None
    except (TypeError, ValueError):
        return None


class TotpConfirmView(APIView):
    throttle_scope = "mfa"

    @extend_schema(request=s.MfaConfirmInput, responses={200: dict})
    def post(self, request: Request) -> Response:
        data = s.MfaConfirmInput(data=request.data)
        data.is_valid(raise_exception=True)
        user, session = _user(request), _current_session(request)
        cookie = getattr(request, "auth_session", None) is None
        codes = services.mfa_totp_confirm(
            user=user,
            code=data.validated_data["code"],
            password=data.validated_data["password"],
            signed_in_at=_dashboard_signed_in_at(request) if cookie else None,
            current_session=session,
        )
        if cookie:  # a dashboard cookie: it stays signed in, now past the MFA step
            update_session_auth_hash(request._request, user)
            otp_login(request._request, TOTPDevice.objects.get(user=user, confirmed=True))
        return Response({"backup_codes": codes})


class BackupCodesView(APIView):
    throttle_scope = "mfa"

    @extend_schema(request=s.CodeInput, responses={200: dict})
    def post(self, request: Request) -> Response:
        data = s.CodeInput(data=request.data)
        data.is_valid(raise_exception=True)
        codes = services.mfa_backup_codes_regenerate(
            user=_user(request), code=data.validated_data["code"]
        )
        return Response({"backup_codes": codes})


class MfaDisableView(APIView):
    throttle_scope = "mfa"

    @extend_schema(request=s.CodeInput, responses={204: None})
    def post(self, request: Request) -> Response:
        data = s.CodeInput(data=request.data)
        data.is_valid(raise_exception=True)
        services.mfa_disable(user=_user(request), code=data.validated_data["code"])
        return Response(status=status.HTTP_204_NO_CONTENT)


class EmailVerifyView(APIView):
    """Verify the address of a mailed link: with the account's ``password``, or signed in as
    the account (bearer token or dashboard cookie). The link alone verifies nothing."""

    authentication_classes = [_OptionalTokenAuthentication, _OptionalCookieAuthentication]
    permission_classes = [AllowAny]
    throttle_scope = "login"

    @extend_schema(request=s.EmailVerifyInput, responses={200: s.UserOutput}, auth=_OPTIONAL_AUTH)
    def post(self, request: Request) -> Response:
        data = s.EmailVerifyInput(data=request.data)
        data.is_valid(raise_exception=True)
        caller = request.user
        user = services.email_verify(
            token=data.validated_data["token"],
            password=data.validated_data["password"],
            signed_in_user=cast(User, caller) if caller and caller.is_authenticated else None,
        )
        return Response(s.UserOutput(user).data)


class PasswordResetView(_Public):
    """Mail a password-reset link to the account using ``email``, if any (same answer
    whether or not one does)."""

    throttle_scope = "password_reset"

    @extend_schema(request=s.PasswordResetInput, responses={202: s.DetailOutput})
    def post(self, request: Request) -> Response:
        data = s.PasswordResetInput(data=request.data)
        data.is_valid(raise_exception=True)
        services.password_reset_request(email=data.validated_data["email"])
        body = {
            "detail": "If an account uses that address, a link to reset its password is on "
            "its way there."
        }
        return Response(body, status=status.HTTP_202_ACCEPTED)


class PasswordResetConfirmView(_Public):
    """Set a new password with the ``uid`` and ``token`` of a mailed reset link; every
    session of the account is revoked."""

    throttle_scope = "password_reset"

    @extend_schema(request=s.PasswordResetConfirmInput, responses={204: None})
    def post(self, request: Request) -> Response:
        data = s.PasswordResetConfirmInput(data=request.data)
        data.is_valid(raise_exception=True)
        services.password_reset_confirm(
            uidb64=data.validated_data["uid"],
            token=data.validated_data["token"],
            new_password=data.validated_data["new_password"],
        )
        return Response(status=status.HTTP_204_NO_CONTENT)


class EmailVerifyResendView(APIView):
    throttle_scope = "verify_email"

    @extend_schema(request=None, responses={204: None})
    def post(self, request: Request) -> Response:
        services.email_verification_resend(user=_user(request))
        return Response(status=status.HTTP_204_NO_CONTENT)


class OAuthExchangeView(_Public):
    throttle_scope = "oauth"

    @extend_schema(request=s.ExchangeInput, responses={200: dict})
    def post(self, request: Request) -> Response:
        data = s.ExchangeInput(data=request.data)
        data.is_valid(raise_exception=True)
        result = services.oauth_exchange_code_redeem(
            code=data.validated_data["code"],
            code_verifier=data.validated_data["code_verifier"],
            ip=client_ip_address(request),
            user_agent=_user_agent(request),
        )
        return Response(_login_body(result))
