"""Failure reasons: a code and a plain reason, never the provider's own text."""

import logging
from typing import Any

import pytest

from common.errors import ApplicationError
from pipeline.failures import FAILURE_REASONS, failure_for, redact
from providers.types import BudgetExceeded, ProviderError


def test_a_provider_error_gives_its_code_and_plain_reason_and_logs_the_text_redacted(
    caplog: Any,
) -> None:
    error = ProviderError(
        "No model answered: vendor:gpt: 401 Incorrect API key provided: sk-proj-abcdef123456",
        code="provider_failed",
    )

    with caplog.at_level(logging.WARNING):
        assert failure_for(error) == ("provider_failed", FAILURE_REASONS["provider_failed"])

    logged = " ".join(str(record.msg) for record in caplog.records)
    assert "Incorrect API key provided: [redacted]" in logged
    assert "sk-proj" not in logged


def test_a_schema_error_gives_the_schema_reason() -> None:
    error = ProviderError("The coder answer from x:y does not match ...", code="schema_invalid")

    assert failure_for(error) == ("schema_invalid", FAILURE_REASONS["schema_invalid"])


def test_an_unknown_provider_code_reads_as_provider_failed() -> None:
    error = ProviderError("HTTP 418 from the teapot", code="teapot")

    assert failure_for(error) == ("provider_failed", FAILURE_REASONS["provider_failed"])


def test_our_own_refusals_keep_their_text() -> None:
    budget = BudgetExceeded("Budget exceeded: the call was not sent.")
    refusal = ApplicationError("The plan has no tasks.", code="invalid_plan")

    assert failure_for(budget) == ("budget", "Budget exceeded: the call was not sent.")
    assert failure_for(refusal) == ("invalid_plan", "The plan has no tasks.")


def test_a_crash_is_internal_without_its_message() -> None:
    assert failure_for(KeyError("secret row 42")) == ("internal", FAILURE_REASONS["internal"])


@pytest.mark.parametrize(
    ("text", "secret", "kept"),
    [
        (
            "Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.e30.sig",
            "eyJhbGciOiJIUzI1NiJ9",
            "Authorization: [redacted]",
        ),
        ("key AKIAABCDEFGHIJKLMNOP rejected", "AKIAABCDEFGHIJKLMNOP", "key [redacted] rejected"),
        ("api_key=abc123 rejected", "abc123", "[redacted] rejected"),
        ("token: 0123456789abcdef0123456789abcdef0123", "0123456789abcdef", "[redacted]"),
        ("password=hunter2; retry", "hunter2", "[redacted] retry"),
        (
            "Incorrect API key provided: sk-proj-abcdef123456.",
            "abcdef123456",
            "Incorrect API key provided: [redacted].",
        ),
    ],
)
def test_credentials_are_redacted_from_logged_text(text: str, secret: str, kept: str) -> None:
    redacted = redact(text)

    assert secret not in redacted
    assert redacted == kept  # the secret gone, the words around it kept
