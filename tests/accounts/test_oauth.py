"""OAuth with Google and GitHub against a local stub provider: begin (POST + CSRF), state,
PKCE, completion signing in the dashboard, the one-time code exchange, linking by verified
email."""

import re
from collections.abc import Iterator
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from django.test import Client, override_settings
from rest_framework.test import APIClient
from social_django.models import UserSocialAuth

from accounts.models import User
from tests.accounts.conftest import bearer
from tests.accounts.oauth_stub import CLIENT_ID, CLIENT_SECRET, OAuthStub

pytestmark = pytest.mark.django_db

CLIENT_REDIRECT = "http://127.0.0.1:8765/callback"


@pytest.fixture
def stub() -> Iterator[OAuthStub]:
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


def _csrf_from(html: str) -> str:
    match = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', html)
    assert match is not None
    return match.group(1)


def begin(
    client: Client,
    backend: str,
    *,
    client_redirect: str | None = CLIENT_REDIRECT,
    code_challenge: str = "",
) -> str:
    """GET the begin page, POST its form (with CSRF): the provider's authorization URL."""
    query = f"?client_redirect={client_redirect}" if client_redirect else ""
    page = client.get(f"/auth/oauth/{backend}/{query}")
    assert page.status_code == 200
    form = {"csrfmiddlewaretoken": _csrf_from(page.content.decode())}
    if client_redirect:
        form["client_redirect"] = client_redirect
    if code_challenge:
        form["code_challenge"] = code_challenge
    response = client.post(f"/auth/oauth/{backend}/", form)
    assert response.status_code == 302
    return response["Location"]


def authorize(authorization_url: str) -> str:
    """The user approves at the provider: the callback path and query on our side."""
    answer = requests.get(authorization_url, allow_redirects=False, timeout=5)
    assert answer.status_code == 302
    target = urlsplit(answer.headers["Location"])
    return f"{target.path}?{target.query}"


def full_flow(client: Client, backend: str) -> dict:
    callback = authorize(begin(client, backend))
    done = client.get(callback)
    assert done.status_code == 302
    location = urlsplit(done["Location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == CLIENT_REDIRECT
    code = parse_qs(location.query)["code"][0]
    exchanged = APIClient().post("/auth/oauth/exchange", {"code": code}, format="json")
    assert exchanged.status_code == 200
    return exchanged.json()


def test_google_flow_creates_a_user_and_the_exchange_returns_working_tokens(stub):
    stub.identity("grace@example.com")
    body = full_flow(Client(enforce_csrf_checks=True), "google")
    user = User.objects.get(email="grace@example.com")
    assert body["user"]["id"] == user.id
    assert bearer(body["access"]).get("/auth/me").json()["email"] == "grace@example.com"
    assert UserSocialAuth.objects.filter(user=user, provider="google").exists()
    assert not user.has_usable_password()


def test_github_flow_creates_a_user_from_the_primary_verified_email(stub):
    stub.identity("linus@example.com")
    body = full_flow(Client(enforce_csrf_checks=True), "github")
    assert bearer(body["access"]).get("/auth/me").json()["email"] == "linus@example.com"
    assert UserSocialAuth.objects.filter(provider="github").count() == 1


@pytest.mark.parametrize("backend", ["google", "github"])
def test_the_flow_links_an_existing_account_by_verified_email(stub, user, backend):
    stub.identity(user.email)
    body = full_flow(Client(enforce_csrf_checks=True), backend)
    assert body["user"]["id"] == user.id
    assert User.objects.count() == 1
    assert UserSocialAuth.objects.get(provider=backend).user == user


def test_github_with_an_unverified_email_neither_links_nor_creates(stub, user):
    stub.identity(user.email, verified=False)
    client = Client(enforce_csrf_checks=True)
    response = client.get(authorize(begin(client, "github")))
    assert response.status_code == 400
    assert not UserSocialAuth.objects.exists()
    assert User.objects.count() == 1


def test_google_with_an_unverified_email_is_refused(stub):
    stub.identity("mallory@example.com", verified=False)
    client = Client(enforce_csrf_checks=True)
    response = client.get(authorize(begin(client, "google")))
    assert response.status_code == 400
    assert not User.objects.filter(email="mallory@example.com").exists()


@pytest.mark.parametrize("backend", ["google", "github"])
def test_a_bad_state_is_refused(stub, backend):
    stub.identity("grace@example.com")
    client = Client(enforce_csrf_checks=True)
    callback = authorize(begin(client, backend))
    tampered = re.sub(r"state=[^&]+", "state=forged-state-value", callback)
    response = client.get(tampered)
    assert response.status_code == 400
    assert not User.objects.exists()
    assert stub.token_requests == []


def test_a_callback_replayed_after_success_is_refused(stub):
    stub.identity("grace@example.com")
    client = Client(enforce_csrf_checks=True)
    callback = authorize(begin(client, "google"))
    assert client.get(callback).status_code == 302
    assert client.get(callback).status_code == 400


@pytest.mark.parametrize("backend", ["google", "github"])
def test_begin_sends_a_pkce_s256_challenge_and_completion_sends_the_verifier(stub, backend):
    stub.identity("grace@example.com")
    full_flow(Client(enforce_csrf_checks=True), backend)
    assert stub.authorize_requests[0]["code_challenge_method"] == "S256"
    assert stub.authorize_requests[0]["state"]
    assert stub.token_requests[0]["code_verifier"]


def test_begin_by_post_without_a_csrf_token_is_403(stub):
    response = Client(enforce_csrf_checks=True).post("/auth/oauth/google/", {})
    assert response.status_code == 403


def test_completion_signs_in_the_dashboard_session(stub):
    stub.identity("grace@example.com")
    client = Client(enforce_csrf_checks=True)
    callback = authorize(begin(client, "google", client_redirect=None))
    done = client.get(callback)
    assert done.status_code == 302
    assert done["Location"] == "/"
    assert "code=" not in done["Location"]
    page = client.get("/")
    assert "Your projects" in page.content.decode()


def test_no_token_ever_appears_in_a_redirect_url(stub):
    stub.identity("grace@example.com")
    client = Client(enforce_csrf_checks=True)
    done = client.get(authorize(begin(client, "google")))
    assert "access" not in done["Location"]
    assert "refresh" not in done["Location"]
    assert "eyJ" not in done["Location"]


def test_the_exchange_code_works_once(stub):
    stub.identity("grace@example.com")
    client = Client(enforce_csrf_checks=True)
    done = client.get(authorize(begin(client, "google")))
    code = parse_qs(urlsplit(done["Location"]).query)["code"][0]
    first = APIClient().post("/auth/oauth/exchange", {"code": code}, format="json")
    second = APIClient().post("/auth/oauth/exchange", {"code": code}, format="json")
    assert first.status_code == 200
    assert second.status_code == 401


def test_an_unknown_exchange_code_is_401():
    response = APIClient().post("/auth/oauth/exchange", {"code": "made-up"}, format="json")
    assert response.status_code == 401


def test_a_non_loopback_client_redirect_is_refused(stub):
    response = Client().get("/auth/oauth/google/?client_redirect=https://evil.example/cb")
    assert response.status_code == 400


def test_an_unknown_provider_is_404():
    assert Client().get("/auth/oauth/myspace/").status_code == 404


def _enable_mfa(user) -> list[str]:
    from django_otp.plugins.otp_totp.models import TOTPDevice

    from accounts.services import mfa_totp_confirm, mfa_totp_setup
    from tests.accounts.conftest import totp_code

    mfa_totp_setup(user=user)
    device = TOTPDevice.objects.get(user=user)
    return mfa_totp_confirm(user=user, code=totp_code(device, offset_steps=-1))


def test_with_mfa_on_the_exchange_returns_an_mfa_challenge_not_tokens(stub, user):
    backup_codes = _enable_mfa(user)
    stub.identity(user.email)
    client = Client(enforce_csrf_checks=True)
    done = client.get(authorize(begin(client, "google")))
    code = parse_qs(urlsplit(done["Location"]).query)["code"][0]
    body = APIClient().post("/auth/oauth/exchange", {"code": code}, format="json").json()
    assert set(body) == {"mfa_required", "mfa_token"}
    verified = APIClient().post(
        "/auth/mfa/verify", {"mfa_token": body["mfa_token"], "code": backup_codes[0]}, format="json"
    )
    assert verified.status_code == 200


def test_with_mfa_on_the_dashboard_waits_at_the_mfa_step_after_oauth(stub, user):
    _enable_mfa(user)
    stub.identity(user.email)
    client = Client(enforce_csrf_checks=True)
    client.get(authorize(begin(client, "google", client_redirect=None)))
    assert "_auth_user_id" not in client.session
    assert "Two-factor check" in client.get("/").content.decode()


def test_a_deactivated_user_cannot_sign_in_through_a_provider(stub, user):
    user.is_active = False
    user.save()
    stub.identity(user.email)
    client = Client(enforce_csrf_checks=True)
    done = client.get(authorize(begin(client, "google")))
    assert "code=" not in done.get("Location", "")
    assert "_auth_user_id" not in client.session


VERIFIER = "client-verifier-" + "x" * 40


def _code_after_flow_with_challenge(stub) -> str:
    from accounts.services import pkce_s256

    stub.identity("grace@example.com")
    client = Client(enforce_csrf_checks=True)
    done = client.get(authorize(begin(client, "google", code_challenge=pkce_s256(VERIFIER))))
    return parse_qs(urlsplit(done["Location"]).query)["code"][0]


def test_a_client_that_sent_a_pkce_challenge_exchanges_with_its_verifier(stub):
    code = _code_after_flow_with_challenge(stub)
    response = APIClient().post(
        "/auth/oauth/exchange", {"code": code, "code_verifier": VERIFIER}, format="json"
    )
    assert response.status_code == 200
    assert bearer(response.json()["access"]).get("/auth/me").status_code == 200


def test_an_intercepted_code_without_the_clients_verifier_is_useless(stub):
    code = _code_after_flow_with_challenge(stub)
    stolen = APIClient().post("/auth/oauth/exchange", {"code": code}, format="json")
    late = APIClient().post(
        "/auth/oauth/exchange", {"code": code, "code_verifier": VERIFIER}, format="json"
    )
    assert stolen.status_code == 401
    assert late.status_code == 401


def test_a_malformed_client_challenge_is_refused_at_begin(stub):
    response = Client().get(
        "/auth/oauth/google/?client_redirect=http://127.0.0.1:1/cb&code_challenge=short"
    )
    assert response.status_code == 400
