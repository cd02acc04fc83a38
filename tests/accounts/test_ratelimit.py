"""Sliding-window rate limits (limits' moving window on Redis) and brute-force lockout."""

import time

import pytest
from django.test import override_settings
from limits import parse
from limits.storage import RedisStorage
from limits.strategies import FixedWindowRateLimiter
from rest_framework.test import APIClient

from tests.accounts.conftest import bearer, login, refresh
from tests.factories import DEFAULT_PASSWORD

pytestmark = pytest.mark.django_db

DEAD_REDIS = "redis://127.0.0.1:1/0"


def _rates(**changes: str) -> dict:
    from django.conf import settings

    return {**settings.ACCOUNTS_RATE_LIMITS, **changes}


def _login(email: str, password: str = DEFAULT_PASSWORD, ip: str = "10.0.0.1"):
    return APIClient().post(
        "/auth/login", {"email": email, "password": password}, format="json", REMOTE_ADDR=ip
    )


def test_the_login_after_the_limit_inside_the_window_is_429_with_retry_after(user):
    with override_settings(ACCOUNTS_RATE_LIMITS=_rates(login="3/minute")):
        allowed = [_login(user.email).status_code for _ in range(3)]
        refused = _login(user.email)
    assert allowed == [200, 200, 200]
    assert refused.status_code == 429
    assert 1 <= int(refused["Retry-After"]) <= 60
    assert refused.json()["code"] == "throttled"


def test_the_login_limit_is_per_client_ip(user):
    with override_settings(ACCOUNTS_RATE_LIMITS=_rates(login="2/minute")):
        _login(user.email, ip="10.0.0.1")
        _login(user.email, ip="10.0.0.1")
        elsewhere = _login(user.email, ip="10.0.0.2")
    assert elsewhere.status_code == 200


def _sleep_until(moment: float) -> None:
    time.sleep(max(0.0, moment - time.time()))


def test_the_window_slides_across_a_fixed_bucket_edge(user):
    """Limit 3 per 4 s. One hit opens a fixed bucket (ending by t0+4); two more land at t0+2.
    Just past the bucket's edge (t0+4.3) a fixed window starts from zero; the moving window
    still holds the two hits from t0+2, so it allows one more and refuses the next."""
    fixed = FixedWindowRateLimiter(RedisStorage(_redis_url()))
    item = parse("3 per 4 seconds")
    outcomes = []
    fixed_outcomes = []
    with override_settings(ACCOUNTS_RATE_LIMITS=_rates(login="3 per 4 seconds")):
        fixed_outcomes.append(fixed.hit(item, "straddle"))
        outcomes.append(_login(user.email).status_code)
        t0 = time.time()  # both first hits are at or before t0
        _sleep_until(t0 + 2.0)
        for _ in range(2):
            outcomes.append(_login(user.email).status_code)
            fixed_outcomes.append(fixed.hit(item, "straddle"))
        _sleep_until(t0 + 4.3)
        for _ in range(2):
            outcomes.append(_login(user.email).status_code)
            fixed_outcomes.append(fixed.hit(item, "straddle"))
    assert outcomes == [200, 200, 200, 200, 429]
    # The same hits against a fixed bucket: all five pass, two bursts back to back.
    assert fixed_outcomes == [True, True, True, True, True]


def _redis_url() -> str:
    from django.conf import settings

    return settings.REDIS_URL


@pytest.mark.parametrize(
    "path, body",
    [
        ("/auth/login", {"email": "a@example.com", "password": "x"}),
        ("/auth/register", {"username": "a", "email": "a@example.com", "password": "x"}),
        ("/auth/refresh", {"refresh": "x"}),
        ("/auth/mfa/verify", {"mfa_token": "x", "code": "123456"}),
        ("/auth/oauth/exchange", {"code": "x"}),
    ],
)
def test_with_redis_down_auth_endpoints_fail_closed_with_503(path, body):
    with override_settings(ACCOUNTS_RATE_LIMIT_STORAGE_URL=DEAD_REDIS):
        response = APIClient().post(path, body, format="json")
    assert response.status_code == 503
    assert response.json()["code"] == "rate_limit_unavailable"


def test_with_redis_down_a_valid_login_is_refused_too(user):
    with override_settings(ACCOUNTS_RATE_LIMIT_STORAGE_URL=DEAD_REDIS):
        response = _login(user.email)
    assert response.status_code == 503


def test_with_redis_down_ordinary_api_calls_still_work(tokens):
    with override_settings(ACCOUNTS_RATE_LIMIT_STORAGE_URL=DEAD_REDIS):
        response = bearer(tokens["access"]).get("/auth/me")
    assert response.status_code == 200


def test_the_api_is_limited_per_user(user, other_user):
    mine = login(user)
    theirs = login(other_user)
    with override_settings(ACCOUNTS_RATE_LIMITS=_rates(user="3/minute")):
        statuses = [bearer(mine["access"]).get("/auth/me").status_code for _ in range(4)]
        other = bearer(theirs["access"]).get("/auth/me")
    assert statuses == [200, 200, 200, 429]
    assert other.status_code == 200


def test_generation_has_its_own_tighter_per_user_limit(user, other_user):
    from pipeline.models import Run
    from tests.factories import ProjectFactory

    mine, theirs = login(user), login(other_user)
    project, their_project = ProjectFactory(owner=user), ProjectFactory(owner=other_user)
    body = {"prompt": "A todo API"}

    def generate(tokens, project):
        return bearer(tokens["access"]).post(
            f"/projects/{project.id}/generate", body, format="json"
        )

    with override_settings(ACCOUNTS_RATE_LIMITS=_rates(generate="2/hour", user="100/minute")):
        statuses = [generate(mine, project).status_code for _ in range(2)]
        refused = generate(mine, project)
        other_call = bearer(mine["access"]).get(f"/projects/{project.id}")
        other_user = generate(theirs, their_project)

    assert statuses == [202, 202]
    assert (refused.status_code, refused.json()["code"]) == (429, "throttled")
    assert int(refused["Retry-After"]) > 60  # the hour's window, not the API's minute
    assert Run.objects.filter(project=project).count() == 2  # the refused call started none
    assert other_call.status_code == 200  # the rest of the API is not held up
    assert other_user.status_code == 202  # nor another user's generation


def test_refresh_is_limited_per_ip(tokens):
    with override_settings(ACCOUNTS_RATE_LIMITS=_rates(refresh="1/minute")):
        refresh(tokens["refresh"])
        response = refresh(tokens["refresh"])
    assert response.status_code == 429


def test_register_is_limited_per_ip():
    with override_settings(ACCOUNTS_RATE_LIMITS=_rates(register="1/minute")):
        APIClient().post("/auth/register", {"username": "a"}, format="json")
        response = APIClient().post("/auth/register", {"username": "b"}, format="json")
    assert response.status_code == 429


# --- Brute-force lockout ----------------------------------------------------------------


@override_settings(ACCOUNTS_LOGIN_LOCKOUT_THRESHOLD=3)
def test_after_n_failed_logins_even_the_right_password_is_refused(user):
    for ip in ("10.0.0.1", "10.0.0.2", "10.0.0.3"):  # spread over IPs: the lock is per account
        assert _login(user.email, password="wrong-guess-123", ip=ip).status_code == 401
    response = _login(user.email, ip="10.0.0.4")
    assert response.status_code == 429
    assert response.json()["code"] == "login_locked"
    assert int(response["Retry-After"]) >= 1


@override_settings(ACCOUNTS_LOGIN_LOCKOUT_THRESHOLD=3)
def test_the_lockout_does_not_reveal_whether_the_account_exists(user):
    for _ in range(3):
        _login(user.email, password="wrong-guess-123")
        _login("nobody@example.com", password="wrong-guess-123")
    existing = _login(user.email, password="wrong-guess-123")
    unknown = _login("nobody@example.com", password="wrong-guess-123")
    assert existing.status_code == unknown.status_code == 429
    assert existing.json() == {**unknown.json(), "retry_after": existing.json()["retry_after"]}


@override_settings(ACCOUNTS_LOGIN_LOCKOUT_THRESHOLD=3)
def test_the_lockout_of_one_account_leaves_others_alone(user, other_user):
    for _ in range(3):
        _login(user.email, password="wrong-guess-123")
    assert _login(other_user.email).status_code == 200


@override_settings(ACCOUNTS_LOGIN_LOCKOUT_THRESHOLD=3)
def test_a_successful_login_clears_the_failure_count(user):
    _login(user.email, password="wrong-guess-123")
    _login(user.email, password="wrong-guess-123")
    assert _login(user.email).status_code == 200
    _login(user.email, password="wrong-guess-123")
    _login(user.email, password="wrong-guess-123")
    assert _login(user.email).status_code == 200


# --- One account, one counter, however its address is spelled -------------------------------


@pytest.fixture
def admin(db):
    from tests.factories import UserFactory

    return UserFactory(email="admin@example.com")


LOOK_ALIKE = "admın@example.com"  # dotless ı: PostgreSQL's UPPER() turns it into ADMIN


def test_a_look_alike_email_does_not_reach_the_account(admin):
    response = _login(LOOK_ALIKE)
    assert (response.status_code, response.json()["code"]) == (401, "invalid_credentials")


@override_settings(ACCOUNTS_LOGIN_LOCKOUT_THRESHOLD=3)
def test_a_locked_account_cannot_be_entered_through_a_look_alike_email(admin):
    for ip in ("10.0.0.1", "10.0.0.2", "10.0.0.3"):
        _login(admin.email, password="wrong-guess-123", ip=ip)
    assert _login(admin.email, ip="10.0.0.4").status_code == 429
    response = _login(LOOK_ALIKE, ip="10.0.0.5")
    assert (response.status_code, response.json()["code"]) == (401, "invalid_credentials")


@override_settings(ACCOUNTS_LOGIN_LOCKOUT_THRESHOLD=3)
def test_every_spelling_of_the_address_counts_against_the_one_account(admin):
    for spelling in ("ADMIN@example.com", "ａｄｍｉｎ@example.com", " Admin@Example.COM "):
        assert _login(spelling, password="wrong-guess-123").status_code == 401
    response = _login("admin@example.com")
    assert (response.status_code, response.json()["code"]) == (429, "login_locked")


@override_settings(ACCOUNTS_LOGIN_LOCKOUT_THRESHOLD=3)
def test_failures_with_a_look_alike_email_do_not_lock_the_real_account(admin):
    for _ in range(3):
        _login(LOOK_ALIKE, password="wrong-guess-123")
    assert _login(LOOK_ALIKE, password="wrong-guess-123").status_code == 429
    assert _login(admin.email).status_code == 200


@override_settings(ACCOUNTS_LOGIN_LOCKOUT_THRESHOLD=2)
def test_the_dashboard_counts_every_spelling_against_the_one_account(admin):
    from django.test import Client

    for spelling in ("ADMIN@example.com", "ａｄｍｉｎ@example.com"):
        Client().post("/", {"email": spelling, "password": "wrong-guess-123"})
    assert _login("admin@example.com").status_code == 429


def test_every_spelling_of_the_address_signs_in_to_the_one_account(admin):
    for spelling in ("ADMIN@example.com", "ａｄｍｉｎ@example.com", " admin@EXAMPLE.com"):
        response = _login(spelling)
        assert (response.status_code, response.json()["user"]["id"]) == (200, admin.id)
