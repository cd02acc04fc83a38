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


@pytest.mark.django_db(transaction=True)
@override_settings(ACCOUNTS_RATE_LIMITS={"refresh": "1000/minute", "anon": "1000/minute"})
@pytest.mark.parametrize("grace", [5, 0])
def test_fifty_parallel_refreshes_of_one_token_leave_at_most_one_live_chain(user, grace):
    with override_settings(ACCOUNTS_REFRESH_GRACE_SECONDS=grace):
        start = login(user)
        barrier = threading.Barrier(50)

        def attempt(_: int) -> tuple[int, str | None]:
            try:
                barrier.wait(timeout=30)
                response = APIClient().post(
                    "/auth/refresh", {"refresh": start["refresh"]}, format="json"
                )
                body = response.json()
                return response.status_code, body.get("refresh")
            finally:
                connection.close()

        with ThreadPoolExecutor(max_workers=50) as pool:
            results = list(pool.map(attempt, range(50)))

        issued = {token for status, token in results if status == 200 and token}
        live = [token for token in issued if refresh(token).status_code == 200]
        assert len(issued) <= 1
        assert len(live) <= 1
        assert all(status in (200, 401) for status, _ in results)


@pytest.mark.django_db(transaction=True)
@override_settings(ACCOUNTS_RATE_LIMITS={"refresh": "1000/minute", "anon": "1000/minute"})
def test_parallel_refreshes_inside_the_grace_window_all_get_the_one_new_pair(user):
    start = login(user)
    barrier = threading.Barrier(20)

    def attempt(_: int) -> tuple[int, dict]:
        try:
            barrier.wait(timeout=30)
            response = APIClient().post(
                "/auth/refresh", {"refresh": start["refresh"]}, format="json"
            )
            return response.status_code, response.json()
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=20) as pool:
        results = list(pool.map(attempt, range(20)))

    assert {status for status, _ in results} == {200}
    assert len({body["refresh"] for _, body in results}) == 1
    assert bearer(results[0][1]["access"]).get("/auth/me").status_code == 200


def test_a_session_older_than_its_absolute_lifetime_cannot_refresh(tokens, settings):
    from datetime import timedelta

    from django.utils import timezone

    UserSession.objects.update(created_at=timezone.now() - timedelta(days=31))
    settings.ACCOUNTS_SESSION_MAX_DAYS = 30
    response = refresh(tokens["refresh"])
    assert response.status_code == 401
    assert response.json()["code"] == "session_expired"
    assert bearer(tokens["access"]).get("/auth/me").status_code == 401
