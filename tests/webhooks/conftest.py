"""Fixtures of the webhook tests: a receiver at the edge that checks signatures with the
Standard Webhooks reference library, and runs whose events cause deliveries."""

import json
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from standardwebhooks import Webhook, WebhookVerificationError

from pipeline.models import Run
from tests.pipeline.conftest import no_sandbox
from tests.stub_http import Answer, RecordingServer, Seen

__all__ = ["Receiver", "make_run", "no_sandbox"]


class Receiver:
    """A webhook receiver on 127.0.0.1: answers ``statuses`` in turn (then 200 forever) and
    keeps, for each request, its ``webhook-id`` and whether its signature verified."""

    def __init__(self, statuses: list[int] | None = None):
        self.statuses = list(statuses or [])
        self.secret: str | None = None
        self.lock = threading.Lock()
        self.server = RecordingServer(self._answer)

    def _answer(self, seen: Seen) -> Answer:
        with self.lock:
            status = self.statuses.pop(0) if self.statuses else 200
        return Answer(status, {"received": status < 300})

    @property
    def url(self) -> str:
        return f"{self.server.url}/hooks"

    @property
    def requests(self) -> list[Seen]:
        return list(self.server.requests)

    def ids(self) -> list[str]:
        return [seen.headers["webhook-id"] for seen in self.requests]

    def verified(self, secret: str | None = None) -> list[Any]:
        """Each request's payload as the reference library verifies it (raises if one fails)."""
        webhook = Webhook(secret or self.secret or "")
        return [webhook.verify(seen.body, seen.headers) for seen in self.requests]

    def close(self) -> None:
        self.server.close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    made = Receiver()
    yield made
    made.close()


@pytest.fixture
def local_webhooks(settings: Any) -> Any:
    """Deliveries may reach this machine (the receiver is on 127.0.0.1), and retry quickly."""
    settings.WEBHOOKS_ALLOW_LOCAL = True
    settings.WEBHOOKS_RETRY_BASE_SECONDS = 0.2
    settings.WEBHOOKS_RETRY_MAX_DELAY_SECONDS = 0.5
    settings.WEBHOOKS_SWEEP_SECONDS = 0.2
    settings.WEBHOOKS_TIMEOUT_SECONDS = 5.0
    return settings


def make_run(project: Any, **fields: Any) -> Run:
    """A run row of ``project`` (no canvas: the tests publish its events themselves)."""
    values: dict[str, Any] = {"prompt": "A habit tracker", "status": Run.Status.RUNNING}
    values.update(fields)
    return Run.objects.create(project=project, created_by=project.owner, **values)


def verify_fails(secret: str, seen: Seen) -> bool:
    try:
        Webhook(secret).verify(seen.body, seen.headers)
    except WebhookVerificationError:
        return True
    return False


Publish = Callable[..., Any]


def body_of(seen: Seen) -> dict[str, Any]:
    return json.loads(seen.body)
