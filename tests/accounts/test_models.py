"""The user model: the one canonical form of an email, and registration comparing by it."""

import pytest
from rest_framework.test import APIClient

from accounts.models import User, canonical_email

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    "spelling",
    ["admin@example.com", "ADMIN@EXAMPLE.COM", " Admin@Example.com ", "ａｄｍｉｎ@example.com"],
)
def test_spellings_of_one_address_share_one_canonical_form(spelling):
    assert canonical_email(spelling) == "admin@example.com"


def test_case_folding_goes_past_lower_case():
    assert canonical_email("STRASSE@example.de") == canonical_email("straße@example.de")


@pytest.mark.parametrize("look_alike", ["admın@example.com", "ADMİN@example.com"])
def test_look_alikes_that_only_upper_or_lower_case_would_merge_stay_apart(look_alike):
    assert canonical_email(look_alike) != canonical_email("admin@example.com")


def test_saving_a_user_stores_the_canonical_form_of_its_email():
    user = User.objects.create_user(username="x", email="Mixed.Case@Example.com")
    assert User.objects.values_list("email_canonical", flat=True).get(pk=user.pk) == (
        "mixed.case@example.com"
    )


@pytest.mark.parametrize("spelling", ["USER@example.com", "user@ＥＸＡＭＰＬＥ.com"])
def test_registration_refuses_another_spelling_of_a_taken_address(spelling):
    User.objects.create_user(username="first", email="user@example.com")
    response = APIClient().post(
        "/auth/register",
        {"username": "second", "email": spelling, "password": "Lovelace-Engine-1843"},
        format="json",
    )
    assert (response.status_code, response.json()["code"]) == (400, "email_taken")


def test_the_natural_key_lookup_uses_the_canonical_form():
    user = User.objects.create_user(username="x", email="admin@example.com")
    assert User.objects.get_by_natural_key("ＡＤＭＩＮ@example.com") == user
    with pytest.raises(User.DoesNotExist):
        User.objects.get_by_natural_key("admın@example.com")
