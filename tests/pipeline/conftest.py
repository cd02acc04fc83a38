"""Fixtures of the pipeline tests: scripting the offline model, waiting for runs."""

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.test import Client

from pipeline.models import Run
from providers.offline import answers
from tests.accounts.conftest import enable_mfa, sign_in_past_mfa
from tests.factories import UserFactory


@pytest.fixture
def script() -> Iterator[Callable[[list[dict[str, Any]]], None]]:
    """Script the offline model (rules consumed atomically; see providers.offline.answers)."""
    yield answers.script_set
    answers.script_clear()


@pytest.fixture
def no_sandbox(settings: Any) -> None:
    """Testers give a static review (fast); the sandbox has tests of its own."""
    settings.SANDBOX_TESTS_ENABLED = False


@pytest.fixture
def admin_client(db: Any) -> Client:
    """Staff signed in past the MFA step (the admin refuses staff without it)."""
    staff = UserFactory.create(is_staff=True, is_superuser=True)
    return sign_in_past_mfa(Client(), staff, enable_mfa(staff)[0])


def wait_for_run(
    run_id: int,
    predicate: Callable[[Run], bool] | None = None,
    *,
    timeout: float = 120.0,
) -> Run:
    """Poll the run until ``predicate`` holds (default: finished); fail after ``timeout``."""
    check = predicate or (lambda run: run.is_finished)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run = Run.objects.get(id=run_id)
        if check(run):
            return run
        time.sleep(0.2)
    run = Run.objects.get(id=run_id)
    raise AssertionError(f"run {run_id} did not get there in {timeout}s: {run.status} {run.error}")


def wait_until(condition: Callable[[], Any], *, timeout: float = 60.0) -> Any:
    """Poll ``condition`` until it is truthy; its value."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"condition not met in {timeout}s")
