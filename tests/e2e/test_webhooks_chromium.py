"""The Webhooks section of the project page in a real browser (Chromium, Playwright), against
daphne and a real Celery worker with the offline model (a labelled test double).

A person adds an endpoint (the secret is shown once), starts a run, and watches the delivery
log: the receiver answers 500 once, the log shows the retry and then the delivery; Redeliver
sends the same message again. The receiver checks every signature with the Standard Webhooks
reference library. The page passes axe's WCAG checks and its strict CSP; screenshots are saved.
"""

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import RUN_WAIT_MS, assert_accessible
from tests.e2e.test_iteration_chromium import shoot, sign_in, wait_completed
from tests.factories import ProjectFactory
from tests.net import ROOT, subprocess_env, web_server
from tests.pipeline.conftest import wait_until
from tests.webhooks.conftest import Receiver
from webhooks.models import Delivery

pytestmark = [pytest.mark.slow, pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def web_url(transactional_db: Any, tmp_path: Path) -> Iterator[str]:
    """daphne on this test run's data; webhook endpoints may be on this machine."""
    if not (ROOT / "node_modules" / "htmx.org").is_dir():
        pytest.fail("The dashboard's browser packages are missing: run `npm ci` (make test does).")
    env = subprocess_env(WEBHOOKS_ALLOW_LOCAL="true")
    with (tmp_path / "daphne.log").open("wb") as log, web_server(env=env, stderr=log) as (url, _):
        yield url


@pytest.fixture
def offline_model(settings: Any) -> None:
    settings.OFFLINE_LATENCY_MS = 50
    settings.SANDBOX_TESTS_ENABLED = False
    settings.WEBHOOKS_ALLOW_LOCAL = True
    settings.WEBHOOKS_RETRY_BASE_SECONDS = 1.0
    settings.WEBHOOKS_RETRY_MAX_DELAY_SECONDS = 1.0


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    made = Receiver(statuses=[500])
    yield made
    made.close()


def test_a_person_adds_a_webhook_and_follows_its_deliveries_in_the_browser(
    web_url: str,
    page: Any,
    user: Any,
    celery_worker: Any,
    offline_model: None,
    receiver: Receiver,
) -> None:
    ProjectFactory(owner=user, name="Release notes")
    sign_in(page, web_url, user)
    page.get_by_role("link", name="Release notes").click()
    webhooks = page.get_by_role("region", name="Webhooks")
    webhooks.get_by_label("Endpoint URL").fill(receiver.url)
    webhooks.get_by_label("A run waits for approval").uncheck()
    webhooks.get_by_role("button", name="Add endpoint").click()

    secret = webhooks.locator("#webhook-secret").inner_text()
    assert secret.startswith("whsec_")
    receiver.secret = secret
    webhooks.get_by_role("article", name=receiver.url).wait_for()
    assert_accessible(page)
    shoot(page, "webhooks-added")

    page.get_by_label("Prompt").fill("Release notes from commit messages")
    page.get_by_role("button", name="Generate").click()
    wait_completed(page)
    page.get_by_role("link", name="Release notes").click()
    log = page.get_by_role("region", name="Webhooks").get_by_role("article", name=receiver.url)
    log.get_by_text("Delivered", exact=True).wait_for(timeout=RUN_WAIT_MS)

    delivery = Delivery.objects.get()
    row = log.get_by_role("row").filter(has_text="run.completed")
    assert row.get_by_role("cell").nth(2).inner_text() == "2"  # one 500, then the delivery
    assert row.get_by_role("cell").nth(3).inner_text() == "200"
    assert receiver.ids() == [delivery.message_id] * 2
    assert [p["type"] for p in receiver.verified()] == ["run.completed"] * 2
    assert secret not in page.content()  # shown once, at creation only
    assert_accessible(page)
    shoot(page, "webhooks-delivered")

    log.get_by_role("button", name=f"Redeliver run.completed delivery {delivery.id}").click()
    wait_until(lambda: len(receiver.requests) == 3, timeout=60)
    row.get_by_role("cell").nth(2).get_by_text("1", exact=True).wait_for(timeout=RUN_WAIT_MS)
    assert receiver.ids() == [delivery.message_id] * 3
    assert len(receiver.verified()) == 3
