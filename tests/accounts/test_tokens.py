"""What the authentication class refuses: every broken or misused token answers 401."""

import time
from datetime import timedelta

import jwt
import pytest
from django.conf import settings
from rest_framework.test import APIClient

from accounts.services import user_deactivate
from tests.accounts.conftest import b64url, bearer, jwt_assemble, jwt_parts, refresh

pytestmark = pytest.mark.django_db


def test_a_fresh_access_token_is_accepted(tokens):
    assert bearer(tokens["access"]).get("/auth/me").status_code == 200


def test_alg_none_is_401(tokens):
    header, payload, _ = jwt_parts(tokens["access"])
    forged = jwt_assemble({**header, "alg": "none"}, payload, "")
    assert bearer(forged).get("/auth/me").status_code == 401


def test_a_token_signed_with_another_key_is_401(tokens):
    _, payload, _ = jwt_parts(tokens["access"])
    forged = jwt.encode(payload, "not-the-signing-key-but-long-enough-0123456789", "HS256")
    assert bearer(forged).get("/auth/me").status_code == 401


def test_a_token_with_a_mangled_signature_is_401(tokens):
    header, payload, signature = jwt_parts(tokens["access"])
    flipped = ("A" if signature[0] != "A" else "B") + signature[1:]
    assert bearer(jwt_assemble(header, payload, flipped)).get("/auth/me").status_code == 401


def test_an_expired_access_token_is_401(tokens):
    _, payload, _ = jwt_parts(tokens["access"])
    now = int(time.time())
    payload.update(iat=now - 3600, exp=now - 60)
    expired = jwt.encode(payload, settings.SECRET_KEY, "HS256")
    response = bearer(expired).get("/auth/me")
    assert response.status_code == 401
    assert response.json()["code"] == "token_not_valid"


def test_a_refresh_token_used_as_an_access_token_is_401(tokens):
    assert bearer(tokens["refresh"]).get("/auth/me").status_code == 401


def test_an_mfa_token_used_as_an_access_token_is_401(user):
    from accounts.services import mfa_token_issue

    assert bearer(mfa_token_issue(user=user)).get("/auth/me").status_code == 401


def test_an_access_token_used_as_a_refresh_token_is_401(tokens):
    assert refresh(tokens["access"]).status_code == 401


@pytest.mark.parametrize(
    "claim, value",
    [("user_id", "999999"), ("token_type", "access2"), ("exp", 4102444800), ("sid", "x")],
)
def test_tampered_claims_keeping_the_original_signature_are_401(tokens, claim, value):
    header, payload, signature = jwt_parts(tokens["access"])
    payload[claim] = value
    assert bearer(jwt_assemble(header, payload, signature)).get("/auth/me").status_code == 401


def test_a_validly_signed_token_for_another_users_session_is_401(tokens, other_user):
    # Even with the key, a token whose sid belongs to someone else's session is refused.
    _, payload, _ = jwt_parts(tokens["access"])
    payload["user_id"] = str(other_user.id)
    forged = jwt.encode(payload, settings.SECRET_KEY, "HS256")
    assert bearer(forged).get("/auth/me").status_code == 401


def test_a_validly_signed_token_without_a_session_is_401(tokens):
    _, payload, _ = jwt_parts(tokens["access"])
    del payload["sid"]
    forged = jwt.encode(payload, settings.SECRET_KEY, "HS256")
    assert bearer(forged).get("/auth/me").status_code == 401


def test_garbage_in_the_authorization_header_is_401():
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Bearer " + b64url(b"definitely not a jwt"))
    assert client.get("/auth/me").status_code == 401


def test_a_deactivated_users_access_token_is_refused(tokens, user):
    user_deactivate(user=user)
    assert bearer(tokens["access"]).get("/auth/me").status_code == 401


def test_a_deactivated_users_refresh_token_is_refused(tokens, user):
    user_deactivate(user=user)
    assert refresh(tokens["refresh"]).status_code == 401


def test_deactivating_through_a_plain_save_also_signs_out_everywhere(tokens, user):
    user.is_active = False
    user.save()
    user.is_active = True  # reactivated later: the old session stays dead
    user.save()
    assert bearer(tokens["access"]).get("/auth/me").status_code == 401
    assert refresh(tokens["refresh"]).status_code == 401


def test_the_mfa_token_expires(user):
    from accounts.tokens import MfaToken

    token = MfaToken()
    token["user_id"] = str(user.id)
    token.set_exp(lifetime=timedelta(seconds=-1))
    response = APIClient().post(
        "/auth/mfa/verify", {"mfa_token": str(token), "code": "123456"}, format="json"
    )
    assert response.status_code == 401


def test_an_access_token_accepted_before_its_expiry_is_refused_after_it(tokens):
    # The second use finds the token's signature already checked: its expiry still counts.
    _, payload, _ = jwt_parts(tokens["access"])
    expires = int(time.time()) + 2
    payload.update(exp=expires)
    short = jwt.encode(payload, settings.SECRET_KEY, "HS256")
    assert bearer(short).get("/auth/me").status_code == 200
    time.sleep(max(0.0, expires - time.time()) + 0.05)
    response = bearer(short).get("/auth/me")
    assert response.status_code == 401
    assert response.json()["code"] == "token_not_valid"
