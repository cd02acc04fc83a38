"""Structured logs (structlog over the standard library) carrying the request id.

The id lives in a context variable: the HTTP middleware sets it per request, Celery's
publish signal copies it into task headers, and the task-prerun signal binds it again
in the worker, so one id follows a request through every task it queues.
"""

import logging
import re
from contextvars import ContextVar
from typing import Any

import structlog

_request_id: ContextVar[str | None] = ContextVar("request_id", default=None)

_SECRET_KEYS = re.compile(r"pass(word)?|secret|token|authorization|api[_-]?key|cookie|ticket", re.I)


def get_request_id() -> str | None:
    return _request_id.get()


def bind_request_id(value: str | None) -> None:
    _request_id.set(value)


class RequestIdFilter(logging.Filter):
    """Adds ``request_id`` to every record so the formatter can print it."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = _request_id.get()
        return True


class DropReplacedTasks(logging.Filter):
    """Drops Celery's "Task … ignored" line: the pipeline's canvas ends every ``replace`` so.

    A replaced task is how design rounds, layers and fix loops move on, not news.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        return not (
            record.name == "celery.app.trace"
            and record.levelno == logging.INFO
            and record.getMessage().endswith(" ignored")
        )


def _add_request_id(_: Any, __: str, event: Any) -> Any:
    request_id = _request_id.get()
    if request_id and "request_id" not in event:
        event["request_id"] = request_id
    return event


def _redact_secrets(_: Any, __: str, event: Any) -> Any:
    """Never let a password, token or key reach a log line, whatever the caller passed."""
    for key in list(event):
        if key != "event" and _SECRET_KEYS.search(key):
            event[key] = "[redacted]"
    return event


_SECRET_VALUES = re.compile(
    r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?-----END [A-Z ]*PRIVATE KEY-----"
    r"|\b(?:sk|rk|pk)-[A-Za-z0-9_-]{16,}"
    r"|\bsk-ant-[A-Za-z0-9_-]{16,}"
    r"|\bAKIA[0-9A-Z]{16}\b"
    r"|\bgh[pousr]_[A-Za-z0-9]{30,}"
    r"|\bxox[abprs]-[A-Za-z0-9-]{10,}"
    r"|\bAIza[0-9A-Za-z_-]{35}"
    r"|\b[Bb]earer\s+[A-Za-z0-9._~+/=-]{16,}",
    re.DOTALL,
)
REDACTED = "[redacted]"


def _configured_secrets() -> list[str]:
    """This deployment's own secrets (signing keys, provider keys): never shown anywhere."""
    from django.conf import settings

    found = [
        getattr(settings, "SECRET_KEY", ""),
        getattr(settings, "SIMPLE_JWT", {}).get("SIGNING_KEY", ""),
        getattr(settings, "METRICS_TOKEN", ""),
        getattr(settings, "SOCIAL_AUTH_GOOGLE_SECRET", ""),
        getattr(settings, "SOCIAL_AUTH_GITHUB_SECRET", ""),
    ]
    for options in getattr(settings, "LLM_PROVIDERS", {}).values():
        found.extend(str(options.get(key) or "") for key in ("api_key", "secret_key"))
    return sorted({value for value in found if len(value) >= 8}, key=len, reverse=True)


def _redact_text(text: str, secrets: list[str]) -> str:
    for secret in secrets:
        text = text.replace(secret, REDACTED)
    return _SECRET_VALUES.sub(REDACTED, text)


def redact_secrets(value: Any) -> Any:
    """``value`` (JSON-like) with secrets replaced by ``[redacted]``, for showing to people.

    The log rule (a key that names a password, token or key hides its text) applies to
    mapping keys, except file paths (``app/secrets.py`` names a file, not a secret); every
    string is also cleared of this deployment's own secrets and of well-known key formats.
    """
    secrets = _configured_secrets()

    def walk(item: Any) -> Any:
        if isinstance(item, dict):
            return {
                key: (
                    REDACTED
                    if isinstance(key, str)
                    and _SECRET_KEYS.search(key)
                    and not re.search(r"[./]", key)
                    and isinstance(item[key], str)
                    and item[key] != ""
                    else walk(item[key])
                )
                for key in item
            }
        if isinstance(item, list | tuple):
            return [walk(element) for element in item]
        if isinstance(item, str):
            return _redact_text(item, secrets)
        return item

    return walk(value)


def _extra_from_record(_: Any, __: str, event: Any) -> Any:
    """Lift the ``extra={...}`` of standard-library calls into the structured event."""
    record = event.get("_record")
    if record is not None:
        for key, value in record.__dict__.items():
            if key not in _STD_ATTRS and not key.startswith("_") and key not in event:
                event[key] = value
    return event


_STD_ATTRS = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {
    "message",
    "asctime",
    "request_id",
    "color_message",
}

SHARED_PROCESSORS: list[Any] = [
    structlog.contextvars.merge_contextvars,
    structlog.stdlib.add_log_level,
    structlog.stdlib.add_logger_name,
    structlog.processors.TimeStamper(fmt="iso", utc=True),
    _add_request_id,
]


def formatter_factory(json: bool = False) -> logging.Formatter:
    """The formatter named in ``LOGGING``: JSON lines in production, key=value in development."""
    renderer: Any = (
        structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer(colors=False)
    )
    return structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[*SHARED_PROCESSORS, _extra_from_record],
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            _redact_secrets,
            structlog.processors.format_exc_info,
            renderer,
        ],
    )


structlog.configure(
    processors=[
        *SHARED_PROCESSORS,
        structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
    ],
    logger_factory=structlog.stdlib.LoggerFactory(),
    wrapper_class=structlog.stdlib.BoundLogger,
    cache_logger_on_first_use=True,
)


def get_logger(name: str) -> Any:
    """A structlog logger: ``log.info("run.started", run_id=...)``."""
    return structlog.stdlib.get_logger(name)
