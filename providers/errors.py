"""Sorting vendor SDK exceptions into transient (retry) and permanent (fail over at once)."""

from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

TRANSIENT_STATUSES = {408, 409, 425, 429, 500, 502, 503, 504, 529}
# Failures that say something about the provider's health or the operator's account there
# (and so count for the provider's circuit, for every user).
UNHEALTHY_STATUSES = TRANSIENT_STATUSES | {401, 402, 403}
_TRANSIENT_NAMES = (
    "timeout",
    "connection",
    "connect",
    "throttl",
    "serviceunavailable",
    "internalserver",
    "endpointconnection",
    "readtimeout",
    "modelnotready",
)


@dataclass
class CallFailure:
    """What went wrong with one call to a model."""

    transient: bool
    status: int | None
    retry_after: float | None
    message: str

    @property
    def counts_against_provider(self) -> bool:
        return self.status is None or self.status in UNHEALTHY_STATUSES

    @property
    def caused_by_request(self) -> bool:
        """A 4xx about the request itself (400, 404, 413, 422...): the prompt, its size or
        the model id, not the provider's health; it counts only against that model for the
        user whose request it was."""
        return (
            self.status is not None
            and 400 <= self.status < 500
            and self.status not in UNHEALTHY_STATUSES
        )


def _chain(exc: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in seen:
        seen.append(current)
        current = current.__cause__ or current.__context__
    return seen


def _headers(exc: BaseException) -> dict[str, str]:
    response = getattr(exc, "response", None)
    if isinstance(response, httpx.Response):
        return {k.lower(): v for k, v in response.headers.items()}
    if isinstance(response, dict):  # botocore ClientError
        meta = response.get("ResponseMetadata", {})
        return {k.lower(): v for k, v in meta.get("HTTPHeaders", {}).items()}
    headers = getattr(response, "headers", None)
    if headers:
        try:
            return {str(k).lower(): str(v) for k, v in dict(headers).items()}
        except (TypeError, ValueError):
            return {}
    return {}


def _status(exc: BaseException) -> int | None:
    for attr in ("status_code", "code", "http_status"):
        value = getattr(exc, attr, None)
        if isinstance(value, int) and 100 <= value < 600:
            return value
    response = getattr(exc, "response", None)
    if isinstance(response, httpx.Response):
        return response.status_code
    if isinstance(response, dict):
        value = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if isinstance(value, int):
            return value
    return None


def parse_retry_after(value: str | None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        from datetime import UTC, datetime

        return max(0.0, (parsedate_to_datetime(value) - datetime.now(UTC)).total_seconds())
    except (TypeError, ValueError, IndexError):
        return None


def classify(exc: BaseException) -> CallFailure:
    """Whether ``exc`` (from any vendor SDK) is worth retrying, and how long to wait."""
    chain = _chain(exc)
    status = None
    headers: dict[str, Any] = {}
    for item in chain:
        status = _status(item)
        if status is not None:
            headers = _headers(item)
            break
    retry_after = parse_retry_after(headers.get("retry-after"))
    if retry_after is None and headers.get("retry-after-ms"):
        retry_after = parse_retry_after(headers["retry-after-ms"])
        retry_after = retry_after / 1000 if retry_after is not None else None
    message = f"{type(exc).__name__}: {exc}"[:500]
    if status is not None:
        return CallFailure(status in TRANSIENT_STATUSES, status, retry_after, message)
    names = " ".join(type(item).__name__.lower() for item in chain)
    transient = isinstance(exc, TimeoutError | ConnectionError | httpx.TransportError) or any(
        word in names for word in _TRANSIENT_NAMES
    )
    return CallFailure(transient, None, retry_after, message)
