"""The Providers page (staff only): the ``/admin/providers`` data as a table."""

import pytest
from django.test import Client

from providers.circuit import circuit_record_failure
from tests.accounts.conftest import enable_mfa, sign_in_past_mfa
from tests.factories import UserFactory
from tests.page_helpers import signed_in_client

pytestmark = pytest.mark.django_db


def staff_past_mfa():
    """A staff browser that passed the MFA step (staff pages require it)."""
    staff = UserFactory(is_staff=True)
    return sign_in_past_mfa(Client(), staff, enable_mfa(staff)[0])


def test_staff_see_each_provider_with_its_circuit_and_models(settings):
    settings.LLM_PROVIDERS = {"openrouter": {"kind": "openai", "default_model": "gpt-4o-mini"}}
    settings.LLM_CHAINS = {"default": ["openrouter:gpt-4o-mini"]}
    html = staff_past_mfa().get("/app/providers").content.decode()
    assert "<h1>Providers</h1>" in html
    assert "openrouter" in html
    assert "circuit closed" in html
    assert "<code>gpt-4o-mini</code>" in html
    assert ">p95</th>" in html


def test_the_providers_page_is_404_for_everyone_else(user):
    assert signed_in_client(user).get("/app/providers").status_code == 404


def test_the_navigation_offers_providers_to_staff_only(user):
    staff = UserFactory(is_staff=True)
    assert 'href="/app/providers"' in signed_in_client(staff).get("/").content.decode()
    assert 'href="/app/providers"' not in signed_in_client(user).get("/").content.decode()


def test_an_open_circuit_shows_as_open(settings):
    settings.LLM_PROVIDERS = {"openrouter": {"kind": "openai", "default_model": "gpt-4o-mini"}}
    settings.LLM_CHAINS = {"default": ["openrouter:gpt-4o-mini"]}
    for _ in range(50):
        if circuit_record_failure("openrouter"):
            break
    html = staff_past_mfa().get("/app/providers").content.decode()
    assert "circuit open" in html
    assert "failures in a row" in html


def test_staff_without_mfa_are_told_to_set_it_up():
    response = signed_in_client(UserFactory(is_staff=True)).get("/app/providers")
    assert response.status_code == 403
    assert "two-factor authentication" in response.content.decode()
