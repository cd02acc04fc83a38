"""Passwords are stored as Argon2id hashes: the settings every environment starts from put
Argon2 first (the test settings swap in a fast hasher, so these tests restore the real list),
and a password registered through the API is stored as an Argon2id hash that checks."""

import pytest
from rest_framework.test import APIClient

from accounts.models import User
from config.settings import base

pytestmark = pytest.mark.django_db

ARGON2 = "django.contrib.auth.hashers.Argon2PasswordHasher"


def test_the_settings_every_environment_starts_from_hash_with_argon2_first() -> None:
    assert base.PASSWORD_HASHERS[0] == ARGON2


def test_a_registered_password_is_stored_as_an_argon2id_hash(settings) -> None:
    settings.PASSWORD_HASHERS = base.PASSWORD_HASHERS
    password = "Lovelace-Engine-1843"

    response = APIClient().post(
        "/auth/register",
        {"username": "ada", "email": "ada@example.com", "password": password},
        format="json",
    )

    user = User.objects.get(email="ada@example.com")
    assert response.status_code == 201
    assert user.password.startswith("argon2$argon2id$v=19$")
    assert password not in user.password
    assert user.check_password(password)
    assert not user.check_password(password + "x")
