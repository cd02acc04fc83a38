"""GET /admin/providers: providers, models, circuits, calls, errors and latency, for staff."""

import pytest
from rest_framework.test import APIClient

from providers.services import complete
from tests.accounts.conftest import enable_mfa, mfa_tokens
from tests.factories import UserFactory
from tests.providers.stubs import openai_error, openai_reply

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff_client():
    """Staff signed in through the MFA step (the endpoint refuses staff without it)."""
    staff = UserFactory(is_staff=True)
    tokens = mfa_tokens(staff, enable_mfa(staff)[0])
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {tokens['access']}")
    return client


@pytest.fixture
def two_providers(llm_settings, stub_server, monkeypatch):
    from providers import router

    monkeypatch.setattr(router, "sleep", lambda _: None)
    good = stub_server(lambda _: openai_reply("ok"))
    bad = stub_server(lambda _: openai_error(503))
    llm_settings.LLM_PROVIDERS = {
        "bad": {"kind": "openai", "base_url": bad.url + "/v1", "api_key": "secret-bad"},
        "good": {"kind": "openai", "base_url": good.url + "/v1", "api_key": "secret-good"},
    }
    llm_settings.LLM_CHAINS = {"default": ["bad:m1", "good:gpt-4o-mini"], "coder": ["good:m2"]}


def _provider(body, name):
    return next(p for p in body["providers"] if p["name"] == name)


def test_staff_see_circuits_calls_errors_and_latency_per_provider_and_model(
    staff_client, two_providers
):
    complete(role="planner", messages=[{"role": "user", "content": "hi"}])
    complete(role="planner", messages=[{"role": "user", "content": "again"}])

    response = staff_client.get("/admin/providers")

    assert response.status_code == 200
    body = response.json()
    bad, good = _provider(body, "bad"), _provider(body, "good")
    assert bad["circuit"]["state"] == "open"
    assert bad["models"][0]["model"] == "m1"
    assert (bad["models"][0]["calls"], bad["models"][0]["errors"]) == (3, 3)
    good_model = next(m for m in good["models"] if m["model"] == "gpt-4o-mini")
    assert (good_model["calls"], good_model["errors"]) == (2, 0)
    assert good_model["p50_ms"] is not None and good_model["p95_ms"] is not None
    assert good_model["price_usd_per_million"] == {"input": "0.15", "output": "0.60"}
    assert good["circuit"]["state"] == "closed"
    assert {m["model"] for m in good["models"]} == {"gpt-4o-mini", "m2"}
    assert "secret" not in response.content.decode()


def test_the_offline_default_is_reported_when_no_provider_is_configured(staff_client, llm_settings):
    body = staff_client.get("/admin/providers").json()

    assert body["offline_default"] is True
    assert [p["name"] for p in body["providers"]] == ["offline"]
    assert body["providers"][0]["models"][0]["model"] == "offline"


def test_a_user_who_is_not_staff_is_refused(api_client, llm_settings):
    assert api_client.get("/admin/providers").status_code == 403


def test_an_anonymous_caller_is_refused(anon_client, llm_settings):
    assert anon_client.get("/admin/providers").status_code == 401
