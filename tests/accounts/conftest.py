"""Helpers for the accounts tests: signing in over HTTP, TOTP codes, token surgery."""

import base64
import json
import time
from typing import Any

import pytest
from django_otp.oath import TOTP
from rest_framework.test import APIClient

from tests.factories import DEFAULT_PASSWORD

UA_LAPTOP = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"
UA_PHONE = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) Safari/604.1"


def login(user: Any, *, user_agent: str = UA_LAPTOP, password: str = DEFAULT_PASSWORD) -> dict:
    """POST /auth/login for ``user``; the JSON body (asserting 200)."""
    response = APIClient().post(
        "/auth/login",
        {"email": user.email, "password": password},
        format="json",
        HTTP_USER_AGENT=user_agent,
    )
    assert response.status_code == 200, response.content
    return response.json()


def bearer(access: str) -> APIClient:
    """A client sending ``access`` as its bearer token."""
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {access}")
    return client


def refresh(token: str) -> Any:
    return APIClient().post("/auth/refresh", {"refresh": token}, format="json")


# A code read this close to the end of its time step may be checked in the next step, where
# a code one step old is already out of the device's tolerance: wait for the next step.
STEP_MARGIN_SECONDS = 3.0


def totp_code(device: Any, *, offset_steps: int = 0) -> str:
    """The code an authenticator app shows now (or ``offset_steps`` steps away), read at
    least ``STEP_MARGIN_SECONDS`` before its time step ends, so the check that follows falls
    in the same step on a loaded machine too."""
    left = device.step - (time.time() - device.t0) % device.step
    if left < STEP_MARGIN_SECONDS:
        time.sleep(left + 0.05)
    totp = TOTP(device.bin_key, device.step, device.t0, device.digits, 0)
    totp.time = time.time() + offset_steps * device.step
    return f"{totp.token():0{device.digits}d}"


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def jwt_parts(token: str) -> tuple[dict, dict, str]:
    """Header, payload (decoded, unverified) and signature of a JWT."""
    header, payload, signature = token.split(".")
    pad = lambda part: part + "=" * (-len(part) % 4)  # noqa: E731
    return (
        json.loads(base64.urlsafe_b64decode(pad(header))),
        json.loads(base64.urlsafe_b64decode(pad(payload))),
        signature,
    )


def jwt_assemble(header: dict, payload: dict, signature: str) -> str:
    return ".".join(
        [
            b64url(json.dumps(header, separators=(",", ":")).encode()),
            b64url(json.dumps(payload, separators=(",", ":")).encode()),
            signature,
        ]
    )


@pytest.fixture
def tokens(user: Any) -> dict:
    """A fresh login of ``user``: access, refresh and user."""
    return login(user)


def enable_mfa(user: Any) -> tuple[Any, list[str]]:
    """Turn MFA on for ``user`` through the services: its TOTP device and backup codes.

    The confirming code is the previous time step's, so the current one is still unused.
    """
    from django_otp.plugins.otp_totp.models import TOTPDevice

    from accounts.services import mfa_totp_confirm, mfa_totp_setup

    mfa_totp_setup(user=user)
    device = TOTPDevice.objects.get(user=user)
    codes = mfa_totp_confirm(
        user=user, code=totp_code(device, offset_steps=-1), password=DEFAULT_PASSWORD
    )
    device.refresh_from_db()
    return device, codes


def sign_in_past_mfa(client: Any, user: Any, device: Any) -> Any:
    """A dashboard (cookie) session of ``user`` that passed the MFA step with ``device``."""
    from django_otp import DEVICE_ID_SESSION_KEY

    client.force_login(user)
    session = client.session
    session[DEVICE_ID_SESSION_KEY] = device.persistent_id
    session.save()
    return client


def mfa_tokens(user: Any, device: Any) -> dict:
    """Sign ``user`` (MFA on) in over the API, password then TOTP: the token pair body."""
    first = login(user)
    response = APIClient().post(
        "/auth/mfa/verify",
        {"mfa_token": first["mfa_token"], "code": totp_code(device)},
        format="json",
    )
    assert response.status_code == 200, response.content
    return response.json()


STRONG_PASSWORD = "Lovelace-Engine-1843"  # noqa: S105


@pytest.fixture
def register(django_capture_on_commit_callbacks: Any) -> Any:
    """``register(email, username=..., password=..., **headers)``: POST /auth/register, then
    run what it queued for after its commit (the verification mail), as a real commit would.
    """

    def _register(
        email: str, *, username: str = "ada", password: str = STRONG_PASSWORD, **headers: Any
    ) -> Any:
        body = {"username": username, "email": email, "password": password}
        with django_capture_on_commit_callbacks(execute=True):
            return APIClient().post("/auth/register", body, format="json", **headers)

    return _register


@pytest.fixture
def verified(user):
    """``user`` after following the verification link mailed at registration."""
    from django.utils import timezone

    user.email_verified_at = timezone.now()
    user.save(update_fields=["email_verified_at"])
    return user


@pytest.fixture
def stub():
    """A local OAuth provider (Google and GitHub endpoints) the settings point at."""
    from django.test import override_settings

    from tests.accounts.oauth_stub import CLIENT_ID, CLIENT_SECRET, OAuthStub

    server = OAuthStub().start()
    with override_settings(
        SOCIAL_AUTH_GOOGLE_KEY=CLIENT_ID,
        SOCIAL_AUTH_GOOGLE_SECRET=CLIENT_SECRET,
        SOCIAL_AUTH_GOOGLE_AUTHORIZATION_URL=f"{server.base}/authorize",
        SOCIAL_AUTH_GOOGLE_ACCESS_TOKEN_URL=f"{server.base}/token",
        SOCIAL_AUTH_GOOGLE_USERINFO_URL=f"{server.base}/userinfo",
        SOCIAL_AUTH_GITHUB_KEY=CLIENT_ID,
        SOCIAL_AUTH_GITHUB_SECRET=CLIENT_SECRET,
        SOCIAL_AUTH_GITHUB_AUTHORIZATION_URL=f"{server.base}/authorize",
        SOCIAL_AUTH_GITHUB_ACCESS_TOKEN_URL=f"{server.base}/token",
        SOCIAL_AUTH_GITHUB_API_URL=f"{server.base}/api/",
    ):
        yield server
    server.stop()
