"""Provider configuration read from the environment (in a fresh interpreter each time)."""

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
VENDOR_VARS = (
    "LLM_",
    "OPENROUTER_",
    "OPENAI_COMPAT_",
    "AZURE_OPENAI_",
    "ANTHROPIC_",
    "BEDROCK_",
    "VERTEX_",
    "GOOGLE_APPLICATION_CREDENTIALS",
)


def _settings_with(**env: str) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(VENDOR_VARS)}
    code = (
        "import json; from config.settings import base as s; "
        "print(json.dumps({'providers': s.LLM_PROVIDERS, 'chains': s.LLM_CHAINS}))"
    )
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env={**clean, **env, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_with_no_provider_configured_every_role_falls_back_to_offline():
    result = _settings_with()

    assert json.loads(result.stdout) == {
        "providers": {},
        "chains": {"default": ["offline:offline"]},
    }


def test_a_configured_provider_replaces_the_offline_default():
    result = _settings_with(OPENROUTER_API_KEY="sk-or", ANTHROPIC_API_KEY="sk-ant")

    config = json.loads(result.stdout)
    assert sorted(config["providers"]) == ["anthropic", "openrouter"]
    assert config["chains"]["default"] == [
        "openrouter:openai/gpt-4o-mini",
        "anthropic:claude-sonnet-4-6",
    ]


def test_role_chains_come_from_llm_chain_variables():
    result = _settings_with(
        OPENROUTER_API_KEY="sk-or",
        LLM_CHAIN_CODER="openrouter:anthropic/claude-sonnet-4.5,offline:offline",
    )

    chains = json.loads(result.stdout)["chains"]
    assert chains["coder"] == ["openrouter:anthropic/claude-sonnet-4.5", "offline:offline"]


def test_a_chain_naming_an_unconfigured_provider_fails_loudly():
    result = _settings_with(LLM_CHAIN_PLANNER="azure:gpt-4o")

    assert result.returncode != 0
    assert "not configured" in result.stderr


def test_a_chain_model_without_a_price_is_a_system_check_warning(llm_settings):
    from providers.checks import unpriced_models_check

    llm_settings.LLM_PROVIDERS = {"vendor": {"kind": "openai", "base_url": "http://x/v1"}}
    llm_settings.LLM_CHAINS = {"default": ["vendor:gpt-4o", "vendor:mystery"]}
    llm_settings.LLM_DEFAULT_PRICE = []

    warnings = unpriced_models_check()

    assert [(w.id, w.msg) for w in warnings] == [
        ("providers.W001", "vendor:mystery has no price, so it is never called.")
    ]
