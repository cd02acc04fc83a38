"""Refresh rotation: reuse detection, the grace window, the atomic compare-and-set."""

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db import connection
from django.test import override_settings
from rest_framework.test import APIClient
from rest_framework_simplejwt.token_blacklist.models import BlacklistedToken

from accounts.models import UserSession
from tests.accounts.conftest import bearer, jwt_parts, login, refresh

pytestmark = pytest.mark.django_db


def test_refresh_rotates_both_tokens_and_keeps_the_session_id(tokens):
    response = refresh(tokens["refresh"])
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"access", "refresh"}
    assert body["refresh"] != tokens["refresh"]
    assert jwt_parts(body["access"])[1]["sid"] == jwt_parts(tokens["access"])[1]["sid"]
    assert jwt_parts(body["refresh"])[1]["sid"] == jwt_parts(tokens["refresh"])[1]["sid"]
    assert bearer(body["access"]).get("/auth/me").status_code == 200


def test_the_rotated_refresh_token_is_blacklisted(tokens):
    refresh(tokens["refresh"])
    old_jti = jwt_parts(tokens["refresh"])[1]["jti"]
    assert BlacklistedToken.objects.filter(token__jti=old_jti).exists()


def test_the_same_token_again_within_the_grace_window_gets_the_same_pair(tokens):
    first = refresh(tokens["refresh"]).json()
    second = refresh(tokens["refresh"])
    assert second.status_code == 200
    assert second.json() == first


def test_a_reused_refresh_token_is_401_and_kills_the_whole_chain(tokens):
    rotated = refresh(tokens["refresh"]).json()
    newest = refresh(rotated["refresh"]).json()
    # The original token is now two rotations old: no grace can cover it.
    reused = refresh(tokens["refresh"])
    assert reused.status_code == 401
    assert reused.json()["code"] == "token_reused"
    assert refresh(newest["refresh"]).status_code == 401
    assert bearer(newest["access"]).get("/auth/me").status_code == 401


@override_settings(ACCOUNTS_REFRESH_GRACE_SECONDS=0)
def test_without_grace_a_reused_token_revokes_the_session_and_its_successor(tokens):
    import time

    rotated = refresh(tokens["refresh"]).json()
    time.sleep(1.1)  # past a zero-second grace window
    reused = refresh(tokens["refresh"])
    assert reused.status_code == 401
    assert refresh(rotated["refresh"]).status_code == 401
    assert bearer(rotated["access"]).get("/auth/me").status_code == 401
    assert UserSession.objects.get().revoked_reason == "refresh_reuse"


def test_reuse_in_one_session_leaves_the_users_other_sessions_alone(user, tokens):
    other_device = login(user)
    refresh(refresh(tokens["refresh"]).json()["refresh"])
    refresh(tokens["refresh"])  # reuse
    assert bearer(other_device["access"]).get("/auth/me").status_code == 200


PARALLEL = 50
# Long enough that every parallel retry lands inside it on a loaded machine.
GRACE_ON_SECONDS = 120


def _refresh_at_once(token: str, count: int = PARALLEL) -> list[tuple[int, dict]]:
    """``count`` threads POST /auth/refresh with ``token`` together: (status, body) each."""
    barrier = threading.Barrier(count)

    def attempt(_: int) -> tuple[int, dict]:
        try:
            barrier.wait(timeout=60)
            response = APIClient().post("/auth/refresh", {"refresh": token}, format="json")
            return response.status_code, response.json()
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=count) as pool:
        return list(pool.map(attempt, range(count)))


@pytest.mark.django_db(transaction=True)
@override_settings(
    ACCOUNTS_RATE_LIMITS={"refresh": "1000/minute", "anon": "1000/minute"},
    ACCOUNTS_REFRESH_GRACE_SECONDS=GRACE_ON_SECONDS,
)
def test_fifty_parallel_refreshes_inside_the_grace_window_all_get_the_one_new_pair(user):
    start = login(user)
    results = _refresh_at_once(start["refresh"])

    assert [status for status, _ in results] == [200] * PARALLEL
    pairs = {(body["access"], body["refresh"]) for _, body in results}
    assert len(pairs) == 1  # one resulting chain
    (access, new_refresh) = pairs.pop()
    assert new_refresh != start["refresh"]
    assert bearer(access).get("/auth/me").status_code == 200
    session = UserSession.objects.get()
    assert session.revoked_at is None
    assert session.refresh_jti == jwt_parts(new_refresh)[1]["jti"]
    assert refresh(new_refresh).status_code == 200  # the chain goes on


@pytest.mark.django_db(transaction=True)
@override_settings(
    ACCOUNTS_RATE_LIMITS={"refresh": "1000/minute", "anon": "1000/minute"},
    ACCOUNTS_REFRESH_GRACE_SECONDS=0,
)
def test_fifty_parallel_refreshes_without_grace_give_one_pair_and_revoke_the_session(user):
    start = login(user)
    results = _refresh_at_once(start["refresh"])

    winners = [body for status, body in results if status == 200]
    losers = [(status, body.get("code")) for status, body in results if status != 200]
    assert len(winners) == 1
    assert losers == [(401, "token_reused")] * (PARALLEL - 1)
    session = UserSession.objects.get()
    assert session.revoked_at is not None
    assert session.revoked_reason == "refresh_reuse"
    # The one pair that was issued died with its session.
    assert refresh(winners[0]["refresh"]).status_code == 401
    assert bearer(winners[0]["access"]).get("/auth/me").status_code == 401


def test_a_session_older_than_its_absolute_lifetime_cannot_refresh(tokens, settings):
    from datetime import timedelta

    from django.utils import timezone

    UserSession.objects.update(created_at=timezone.now() - timedelta(days=31))
    settings.ACCOUNTS_SESSION_MAX_DAYS = 30
    response = refresh(tokens["refresh"])
    assert response.status_code == 401
    assert response.json()["code"] == "session_expired"
    assert bearer(tokens["access"]).get("/auth/me").status_code == 401
