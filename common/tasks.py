"""Tasks that belong to no app: a round-trip probe used by tests and operators."""

from celery import shared_task

from .logging import get_logger, get_request_id

log = get_logger(__name__)


@shared_task(name="common.echo")
def echo(value: str) -> dict[str, str | None]:
    """Return ``value`` with the request id the task saw, proving the round trip."""
    log.info("echo.ran", value=value)
    return {"value": value, "request_id": get_request_id()}
