"""Why a step or a run failed, in plain words: a code and a fixed reason per code.

A provider's own error text (which may quote the request, an account id or part of a key)
never reaches ``Run.error``, ``Step.error`` or an event: those get the code and the plain
reason below. The vendor's text goes to the worker's log at warning level, with anything
that looks like a credential redacted.
"""

from __future__ import annotations

import re

from common.logging import get_logger
from providers.types import BudgetExceeded, ProviderError

logger = get_logger(__name__)

#: The plain reason shown for each failure code that comes from a provider or a crash.
FAILURE_REASONS = {
    "provider_failed": (
        "No model of the step's chain gave an answer: the providers refused the request "
        "or could not be reached."
    ),
    "schema_invalid": (
        "The model's answer did not have the expected form, even after one repair attempt."
    ),
    "invalid_chain": "The run names a model chain that is not written as provider:model.",
    "unknown_provider": "The run names a provider that is not configured.",
    "config": "The model chain of this step is not configured correctly.",
    "invalid_request": "The request to the model was malformed.",
    "internal": "An internal error stopped the run; the operator can find it in the logs.",
}

_CREDENTIAL = re.compile(
    r"(?i)(?:bearer\s+\S+|\b(?:sk|pk|rk|ak)-[\w-]{6,}|\bAKIA[0-9A-Z]{12,}\b|"
    r"\b(?:api[_-]?key|token|secret|password)\s*[=:]\s*\S+|\b[\w-]{32,}\b)"
)


def redact(text: str) -> str:
    """``text`` with anything that looks like a key, token or password replaced."""
    return _CREDENTIAL.sub("[redacted]", text)


def failure_for(exc: BaseException) -> tuple[str, str]:
    """The ``(code, plain reason)`` of a stage's error; provider text is logged, not kept.

    Our own refusals (``BudgetExceeded``, an ``ApplicationError``-style error with a code
    and a detail we wrote) keep their text; every provider error gets its code's reason;
    anything else is ``internal``.
    """
    code = getattr(exc, "code", None)
    if isinstance(exc, BudgetExceeded):
        return exc.code, str(exc.detail)
    if isinstance(exc, ProviderError):
        code = code if isinstance(code, str) and code in FAILURE_REASONS else "provider_failed"
        logger.warning("pipeline.provider_error", code=code, error=redact(str(exc.detail))[:2000])
        return code, FAILURE_REASONS[code]
    detail = getattr(exc, "detail", None)
    if isinstance(code, str) and isinstance(detail, str) and detail:
        return code, detail
    logger.warning("pipeline.internal_error", error=redact(f"{type(exc).__name__}: {exc}")[:2000])
    return "internal", FAILURE_REASONS["internal"]
