"""Device sessions: listing, signing one device out, account changes that sign out everywhere."""

import pytest
from rest_framework.test import APIClient

from tests.accounts.conftest import UA_LAPTOP, UA_PHONE, bearer, jwt_parts, login, refresh

pytestmark = pytest.mark.django_db


def _sid(tokens: dict) -> str:
    return jwt_parts(tokens["access"])[1]["sid"]


def test_sessions_lists_each_login_with_its_device_and_marks_the_current_one(user):
    laptop = login(user, user_agent=UA_LAPTOP)
    phone = login(user, user_agent=UA_PHONE)
    response = bearer(laptop["access"]).get("/auth/sessions")
    assert response.status_code == 200
    rows = {row["id"]: row for row in response.json()}
    assert set(rows) == {_sid(laptop), _sid(phone)}
    assert rows[_sid(laptop)]["current"] is True
    assert rows[_sid(phone)]["current"] is False
    assert rows[_sid(phone)]["device"] == "Safari on iOS"
    assert rows[_sid(phone)]["user_agent"] == UA_PHONE
    assert set(rows[_sid(phone)]) >= {"id", "user_agent", "ip", "created_at", "last_seen_at"}


def test_sessions_never_lists_another_users_sessions(user, other_user):
    mine = login(user)
    login(other_user)
    response = bearer(mine["access"]).get("/auth/sessions")
    assert [row["id"] for row in response.json()] == [_sid(mine)]


def test_deleting_a_session_kills_that_devices_tokens_at_once(user):
    laptop = login(user, user_agent=UA_LAPTOP)
    phone = login(user, user_agent=UA_PHONE)
    response = bearer(laptop["access"]).delete(f"/auth/sessions/{_sid(phone)}")
    assert response.status_code == 204
    assert bearer(phone["access"]).get("/auth/me").status_code == 401
    assert refresh(phone["refresh"]).status_code == 401


def test_deleting_a_session_leaves_the_users_other_sessions_working(user):
    laptop = login(user, user_agent=UA_LAPTOP)
    phone = login(user, user_agent=UA_PHONE)
    bearer(laptop["access"]).delete(f"/auth/sessions/{_sid(phone)}")
    assert bearer(laptop["access"]).get("/auth/me").status_code == 200
    assert refresh(laptop["refresh"]).status_code == 200


def test_a_revoked_session_stays_refused_when_redis_has_forgotten_it(user):
    import redis
    from django.conf import settings

    laptop = login(user)
    phone = login(user)
    bearer(laptop["access"]).delete(f"/auth/sessions/{_sid(phone)}")
    redis.Redis.from_url(settings.REDIS_URL).flushdb()  # the database is the source of truth
    assert bearer(phone["access"]).get("/auth/me").status_code == 401


def test_deleting_another_users_session_is_404_and_leaves_it_working(user, other_user):
    mine = login(user)
    theirs = login(other_user)
    response = bearer(mine["access"]).delete(f"/auth/sessions/{_sid(theirs)}")
    assert response.status_code == 404
    assert bearer(theirs["access"]).get("/auth/me").status_code == 200


def test_deleting_an_unknown_session_is_404(tokens):
    response = bearer(tokens["access"]).delete(
        "/auth/sessions/00000000-0000-0000-0000-000000000000"
    )
    assert response.status_code == 404


def test_a_session_can_sign_itself_out(tokens):
    response = bearer(tokens["access"]).delete(f"/auth/sessions/{_sid(tokens)}")
    assert response.status_code == 204
    assert bearer(tokens["access"]).get("/auth/me").status_code == 401


def test_changing_the_password_signs_out_every_session(user):
    laptop = login(user)
    phone = login(user)
    response = bearer(laptop["access"]).post(
        "/auth/password",
        {"current_password": "Correct-Horse-Battery-9", "new_password": "Another-Strong-Phrase-42"},
        format="json",
    )
    assert response.status_code == 204
    assert bearer(laptop["access"]).get("/auth/me").status_code == 401
    assert bearer(phone["access"]).get("/auth/me").status_code == 401
    assert refresh(phone["refresh"]).status_code == 401


def test_changing_the_password_needs_the_current_one(tokens):
    response = bearer(tokens["access"]).post(
        "/auth/password",
        {"current_password": "wrong-wrong-wrong", "new_password": "Another-Strong-Phrase-42"},
        format="json",
    )
    assert response.status_code == 400
    assert bearer(tokens["access"]).get("/auth/me").status_code == 200


def test_the_new_password_works_after_a_change(user, tokens):
    bearer(tokens["access"]).post(
        "/auth/password",
        {"current_password": "Correct-Horse-Battery-9", "new_password": "Another-Strong-Phrase-42"},
        format="json",
    )
    response = APIClient().post(
        "/auth/login",
        {"email": user.email, "password": "Another-Strong-Phrase-42"},
        format="json",
    )
    assert response.status_code == 200


def test_a_password_hash_upgrade_on_login_does_not_sign_anyone_out(user, settings):
    laptop = login(user)
    # Log in once more under a new preferred hasher: Django rehashes the password in place.
    settings.PASSWORD_HASHERS = [
        "django.contrib.auth.hashers.PBKDF2SHA1PasswordHasher",
        "django.contrib.auth.hashers.MD5PasswordHasher",
    ]
    login(user)
    user.refresh_from_db()
    assert user.password.startswith("pbkdf2_sha1$")
    assert bearer(laptop["access"]).get("/auth/me").status_code == 200


def test_a_session_revoked_in_the_database_refuses_its_access_token_at_once(tokens):
    from django.utils import timezone

    from accounts.models import UserSession

    UserSession.objects.filter(pk=_sid(tokens)).update(revoked_at=timezone.now())
    response = bearer(tokens["access"]).get("/auth/me")
    assert response.status_code == 401
    assert response.json()["code"] == "session_revoked"
