"""OAuth with Google and GitHub against a local stub provider: begin (POST + CSRF), state,
PKCE (ours with the provider, and the client's, required with a client redirect), completion
signing in the dashboard, the one-time code exchange, linking only to verified accounts."""

import re
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from django.test import Client
from django.utils import timezone
from rest_framework.test import APIClient
from social_django.models import UserSocialAuth

from accounts.models import User
from accounts.services import pkce_s256
from tests.accounts.conftest import bearer, enable_mfa, login, refresh
from tests.factories import DEFAULT_PASSWORD

pytestmark = pytest.mark.django_db

CLIENT_REDIRECT = "http://127.0.0.1:8765/callback"
VERIFIER = "client-verifier-" + "x" * 40
CHALLENGE = pkce_s256(VERIFIER)


def _csrf_from(html: str) -> str:
    match = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', html)
    assert match is not None
    return match.group(1)


def begin(
    client: Client,
    backend: str,
    *,
    client_redirect: str | None = CLIENT_REDIRECT,
    code_challenge: str = CHALLENGE,
) -> str:
    """GET the begin page, POST its form (with CSRF): the provider's authorization URL."""
    query = (
        f"?client_redirect={client_redirect}&code_challenge={code_challenge}"
        if client_redirect
        else ""
    )
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


def through_the_password_step(client: Client, done, password: str = DEFAULT_PASSWORD):
    """A first link to an account with a password pauses for it: give it, and go on."""
    assert (done.status_code, done["Location"]) == (302, "/auth/oauth/link")
    page = client.get("/auth/oauth/link")
    posted = client.post(
        "/auth/oauth/link",
        {"csrfmiddlewaretoken": _csrf_from(page.content.decode()), "password": password},
    )
    assert posted.status_code == 302, posted.content
    return client.get(posted["Location"])


def full_flow(client: Client, backend: str, *, password: str | None = None) -> dict:
    """Begin, approve, complete (through the password step when ``password`` is given),
    exchange the code: the token body."""
    callback = authorize(begin(client, backend))
    done = client.get(callback)
    if password is not None:
        done = through_the_password_step(client, done, password)
    assert done.status_code == 302
    location = urlsplit(done["Location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == CLIENT_REDIRECT
    code = parse_qs(location.query)["code"][0]
    exchanged = exchange(code)
    assert exchanged.status_code == 200
    return exchanged.json()


def exchange(code: str, verifier: str = VERIFIER):
    return APIClient().post(
        "/auth/oauth/exchange", {"code": code, "code_verifier": verifier}, format="json"
    )


def code_from(done) -> str:
    return parse_qs(urlsplit(done["Location"]).query)["code"][0]


def test_google_flow_creates_a_user_and_the_exchange_returns_working_tokens(stub):
    stub.identity("grace@example.com")
    body = full_flow(Client(enforce_csrf_checks=True), "google")
    user = User.objects.get(email="grace@example.com")
    assert body["user"]["id"] == user.id
    assert bearer(body["access"]).get("/auth/me").json()["email"] == "grace@example.com"
    assert UserSocialAuth.objects.filter(user=user, provider="google").exists()
    assert not user.has_usable_password()
    assert user.email_verified  # the provider vouched for the address


def test_github_flow_creates_a_user_from_the_primary_verified_email(stub):
    stub.identity("linus@example.com")
    body = full_flow(Client(enforce_csrf_checks=True), "github")
    assert bearer(body["access"]).get("/auth/me").json()["email"] == "linus@example.com"
    assert UserSocialAuth.objects.filter(provider="github").count() == 1


@pytest.mark.parametrize("backend", ["google", "github"])
def test_the_flow_links_an_existing_account_by_verified_email(stub, verified, backend):
    stub.identity(verified.email)
    body = full_flow(Client(enforce_csrf_checks=True), backend, password=DEFAULT_PASSWORD)
    assert body["user"]["id"] == verified.id
    assert User.objects.count() == 1
    assert UserSocialAuth.objects.get(provider=backend).user == verified


def test_github_with_an_unverified_email_neither_links_nor_creates(stub, verified):
    user = verified
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
    code = code_from(client.get(authorize(begin(client, "google"))))
    first = exchange(code)
    second = exchange(code)
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


def test_with_mfa_on_the_exchange_returns_an_mfa_challenge_not_tokens(stub, verified):
    user = verified
    _, backup_codes = enable_mfa(user)
    stub.identity(user.email)
    client = Client(enforce_csrf_checks=True)
    done = through_the_password_step(client, client.get(authorize(begin(client, "google"))))
    body = exchange(code_from(done)).json()
    assert set(body) == {"mfa_required", "mfa_token"}
    verified = APIClient().post(
        "/auth/mfa/verify", {"mfa_token": body["mfa_token"], "code": backup_codes[0]}, format="json"
    )
    assert verified.status_code == 200


def test_with_mfa_on_the_dashboard_waits_at_the_mfa_step_after_oauth(stub, verified):
    user = verified
    enable_mfa(user)
    stub.identity(user.email)
    client = Client(enforce_csrf_checks=True)
    done = client.get(authorize(begin(client, "google", client_redirect=None)))
    through_the_password_step(client, done)
    assert "_auth_user_id" not in client.session
    assert "Two-factor check" in client.get("/").content.decode()


def test_a_deactivated_user_cannot_sign_in_through_a_provider(stub, verified):
    user = verified
    user.is_active = False
    user.save()
    stub.identity(user.email)
    client = Client(enforce_csrf_checks=True)
    done = client.get(authorize(begin(client, "google")))
    assert "code=" not in done.get("Location", "")
    assert "_auth_user_id" not in client.session


def _code_after_flow_with_challenge(stub) -> str:
    stub.identity("grace@example.com")
    client = Client(enforce_csrf_checks=True)
    return code_from(client.get(authorize(begin(client, "google"))))


def test_a_client_that_sent_a_pkce_challenge_exchanges_with_its_verifier(stub):
    response = exchange(_code_after_flow_with_challenge(stub))
    assert response.status_code == 200
    assert bearer(response.json()["access"]).get("/auth/me").status_code == 200


def test_an_intercepted_code_without_the_clients_verifier_is_useless(stub):
    code = _code_after_flow_with_challenge(stub)
    stolen = APIClient().post("/auth/oauth/exchange", {"code": code}, format="json")
    late = exchange(code)
    assert stolen.status_code == 401
    assert late.status_code == 401


def test_an_intercepted_code_with_a_wrong_verifier_is_useless(stub):
    code = _code_after_flow_with_challenge(stub)
    assert exchange(code, verifier="attacker-verifier-" + "y" * 40).status_code == 401
    assert exchange(code).status_code == 401


@pytest.mark.parametrize("method", ["get", "post"])
def test_a_client_redirect_without_a_pkce_challenge_is_refused_at_begin(stub, method):
    client = Client()
    if method == "get":
        response = client.get(f"/auth/oauth/google/?client_redirect={CLIENT_REDIRECT}")
    else:
        response = client.post("/auth/oauth/google/", {"client_redirect": CLIENT_REDIRECT})
    assert response.status_code == 400
    assert "code_challenge" in response.content.decode()
    assert stub.authorize_requests == []


def test_an_exchange_code_without_a_challenge_cannot_be_issued(user):
    from accounts.services import oauth_exchange_code_create
    from common.errors import ApplicationError

    with pytest.raises(ApplicationError) as refused:
        oauth_exchange_code_create(user=user, code_challenge="")
    assert refused.value.code == "code_challenge_required"


# --- Pre-registration takeover: linking needs a verified account -----------------------------


ATTACKER_PASSWORD = "Attacker-Chosen-Pass-1"  # noqa: S105


@pytest.fixture
def squat(register):
    """Register an address with a password, as anyone can: the new (unverified) account."""

    def _squat(email: str) -> User:
        response = register(email, username="mallory", password=ATTACKER_PASSWORD)
        assert response.status_code == 201
        return User.objects.get(pk=response.json()["id"])

    return _squat


@pytest.mark.parametrize("backend", ["google", "github"])
def test_an_account_registered_with_someone_elses_email_is_not_linked_to_their_identity(
    stub, squat, backend
):
    squatted = squat("victim@example.com")
    stub.identity("victim@example.com")
    client = Client(enforce_csrf_checks=True)
    response = client.get(authorize(begin(client, backend)))
    assert response.status_code == 403
    page = response.content.decode()
    assert "has not been verified" in page
    assert "password" in page
    assert not UserSocialAuth.objects.exists()
    assert "_auth_user_id" not in client.session
    assert User.objects.get() == squatted  # refused: neither linked nor a second account


def test_the_refused_victim_gets_no_code_and_the_attacker_keeps_no_new_access(stub, squat):
    squat("victim@example.com")
    stub.identity("victim@example.com")
    client = Client(enforce_csrf_checks=True)
    done = client.get(authorize(begin(client, "google")))
    assert "code=" not in done.get("Location", "")


def test_a_signed_in_user_cannot_connect_a_provider_to_an_unverified_account(stub, user):
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    stub.identity("someone-else@example.com")
    response = client.get(authorize(begin(client, "google", client_redirect=None)))
    assert response.status_code == 403
    assert not UserSocialAuth.objects.exists()


def test_once_verified_the_account_is_linked_and_its_other_sessions_end(stub, user):
    device_session = login(user)
    dashboard = Client()
    dashboard.force_login(user)
    _verify_by_link(user, DEFAULT_PASSWORD)
    stub.identity(user.email)
    body = full_flow(Client(enforce_csrf_checks=True), "google", password=DEFAULT_PASSWORD)
    assert body["user"]["id"] == user.id
    assert UserSocialAuth.objects.get().user == user
    # Whoever held the account before the link is signed out everywhere ...
    assert bearer(device_session["access"]).get("/auth/me").status_code == 401
    assert refresh(device_session["refresh"]).status_code == 401
    assert dashboard.get("/auth/me").status_code == 401
    # ... and the sign-in that linked it works.
    assert bearer(body["access"]).get("/auth/me").status_code == 200


def test_the_dashboard_sign_in_that_links_an_account_stays_signed_in(stub, verified):
    stub.identity(verified.email)
    client = Client(enforce_csrf_checks=True)
    done = client.get(authorize(begin(client, "google", client_redirect=None)))
    done = through_the_password_step(client, done)
    assert done["Location"] == "/"
    assert client.get("/auth/me").status_code == 200


def test_a_signed_in_verified_user_who_connects_a_provider_stays_signed_in(stub, verified):
    other_device = login(verified)
    client = Client(enforce_csrf_checks=True)
    client.force_login(verified)
    stub.identity("another-address@example.com")
    done = client.get(authorize(begin(client, "google", client_redirect=None)))
    through_the_password_step(client, done)
    assert UserSocialAuth.objects.get().user == verified
    assert client.get("/auth/me").status_code == 200
    assert bearer(other_device["access"]).get("/auth/me").status_code == 401


def test_signing_in_again_with_a_linked_identity_ends_no_session(stub, verified):
    stub.identity(verified.email)
    full_flow(Client(enforce_csrf_checks=True), "google", password=DEFAULT_PASSWORD)
    kept = login(verified)
    full_flow(Client(enforce_csrf_checks=True), "google")
    assert bearer(kept["access"]).get("/auth/me").status_code == 200


@pytest.mark.parametrize("spelling", ["VICTIM@Example.COM", "ｖｉｃｔｉｍ@example.com"])
def test_linking_finds_the_account_by_its_canonical_email(stub, squat, spelling):
    owner = squat("victim@example.com")
    _verify_by_link(owner, ATTACKER_PASSWORD)
    stub.identity(spelling)
    body = full_flow(Client(enforce_csrf_checks=True), "google", password=ATTACKER_PASSWORD)
    assert body["user"]["id"] == owner.id
    assert User.objects.count() == 1


def test_a_look_alike_email_from_a_provider_is_not_linked_to_the_account(stub, squat):
    owner = squat("admin@example.com")
    _verify_by_link(owner, ATTACKER_PASSWORD)
    stub.identity("admın@example.com")  # dotless ı: PostgreSQL's UPPER() makes it ADMIN
    body = full_flow(Client(enforce_csrf_checks=True), "google")
    assert body["user"]["id"] != owner.id
    assert not UserSocialAuth.objects.filter(user=owner).exists()


def _mailed_link_for(user: User) -> str:
    """The path of the verification link in the last mail to ``user``."""
    from django.core import mail

    from accounts.services import email_verification_send

    if not [m for m in mail.outbox if user.email in m.to]:
        email_verification_send(user=user)
    body = str([m for m in mail.outbox if user.email in m.to][-1].body)
    found = re.search(r"https?://[^/\s]+(/auth/email/verify/\S+)", body)
    assert found is not None
    return found.group(1)


def _verify_by_link(user: User, password: str) -> None:
    """Confirm the mailed verification link on its page with the account's password."""
    client = Client(enforce_csrf_checks=True)
    path = _mailed_link_for(user)
    page = client.get(path).content.decode()
    response = client.post(path, {"csrfmiddlewaretoken": _csrf_from(page), "password": password})
    assert "Email verified" in response.content.decode()


def test_a_malformed_client_challenge_is_refused_at_begin(stub):
    response = Client().get(
        "/auth/oauth/google/?client_redirect=http://127.0.0.1:1/cb&code_challenge=short"
    )
    assert response.status_code == 400


def test_a_stored_exchange_code_without_a_challenge_is_refused(user):
    import hashlib
    from datetime import timedelta

    from accounts.models import OAuthExchangeCode

    code = "a-code-from-before-pkce-was-required"
    OAuthExchangeCode.objects.create(
        user=user,
        digest=hashlib.sha256(code.encode()).hexdigest(),
        expires_at=timezone.now() + timedelta(minutes=1),
    )
    response = APIClient().post("/auth/oauth/exchange", {"code": code}, format="json")
    assert response.status_code == 401
