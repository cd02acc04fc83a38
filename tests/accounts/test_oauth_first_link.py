"""The first provider identity linked to an account that has a password waits for that
password, once: a verified address alone (or a signed-in session) does not let a Google or
GitHub identity into an account; a wrong password counts as a failed sign-in."""

from typing import Any
from urllib.parse import urlsplit

import pytest
from django.test import Client
from social_django.models import UserSocialAuth

from tests.accounts.test_oauth import (
    CLIENT_REDIRECT,
    _csrf_from,
    authorize,
    begin,
    code_from,
    exchange,
    through_the_password_step,
)
from tests.factories import DEFAULT_PASSWORD

pytestmark = pytest.mark.django_db

LINK_PAGE = "/auth/oauth/link"


def post_password(client: Client, password: str) -> Any:
    page = client.get(LINK_PAGE)
    return client.post(
        LINK_PAGE, {"csrfmiddlewaretoken": _csrf_from(page.content.decode()), "password": password}
    )


def test_the_first_link_to_an_account_with_a_password_waits_for_that_password(stub, verified):
    stub.identity(verified.email)
    client = Client(enforce_csrf_checks=True)

    done = client.get(authorize(begin(client, "google")))
    page = client.get(LINK_PAGE)

    assert (done.status_code, done["Location"]) == (302, LINK_PAGE)
    assert (UserSocialAuth.objects.count(), "_auth_user_id" in client.session) == (0, False)
    assert page.status_code == 200
    assert verified.email in page.content.decode()
    assert 'name="password"' in page.content.decode()


def test_the_right_password_links_the_identity_and_signs_in(stub, verified):
    stub.identity(verified.email)
    client = Client(enforce_csrf_checks=True)

    done = through_the_password_step(client, client.get(authorize(begin(client, "google"))))
    location = urlsplit(done["Location"])

    assert UserSocialAuth.objects.get(provider="google").user == verified
    assert f"{location.scheme}://{location.netloc}{location.path}" == CLIENT_REDIRECT
    assert exchange(code_from(done)).json()["user"]["id"] == verified.id


def test_a_wrong_password_links_nothing_and_counts_as_a_failed_sign_in(stub, verified, settings):
    settings.ACCOUNTS_LOGIN_LOCKOUT_THRESHOLD = 2
    stub.identity(verified.email)
    client = Client(enforce_csrf_checks=True)
    client.get(authorize(begin(client, "google")))

    wrong = [post_password(client, f"guess-{n}").status_code for n in range(2)]
    right = post_password(client, DEFAULT_PASSWORD)

    assert (wrong, right.status_code) == ([400, 400], 429)
    assert "Too many failed sign-in attempts" in right.content.decode()
    assert UserSocialAuth.objects.count() == 0


def test_resuming_the_paused_sign_in_without_the_password_links_nothing(stub, verified):
    stub.identity(verified.email)
    client = Client(enforce_csrf_checks=True)
    client.get(authorize(begin(client, "google")))
    token = client.session["partial_pipeline_token"]

    again = client.get(f"/auth/oauth/google/complete/?partial_token={token}")

    assert (again.status_code, again["Location"]) == (302, LINK_PAGE)
    assert (UserSocialAuth.objects.count(), "_auth_user_id" in client.session) == (0, False)


def test_the_password_is_asked_once_a_second_provider_links_without_it(stub, verified):
    stub.identity(verified.email)
    first = Client(enforce_csrf_checks=True)
    through_the_password_step(first, first.get(authorize(begin(first, "google"))))
    second = Client(enforce_csrf_checks=True)

    done = second.get(authorize(begin(second, "github")))

    assert urlsplit(done["Location"]).path == urlsplit(CLIENT_REDIRECT).path
    assert UserSocialAuth.objects.get(provider="github").user == verified


def test_a_signed_in_user_connecting_a_first_provider_gives_the_password_too(stub, verified):
    client = Client(enforce_csrf_checks=True)
    client.force_login(verified)
    stub.identity("another-address@example.com")

    done = client.get(authorize(begin(client, "google", client_redirect=None)))

    assert (done.status_code, done["Location"]) == (302, LINK_PAGE)
    assert UserSocialAuth.objects.count() == 0


def test_the_link_page_without_a_paused_sign_in_is_404():
    assert Client().get(LINK_PAGE).status_code == 404
