"""sandbox_status(): what /health reports about the sandbox, checked for real and cached."""

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from projects.sandbox import SandboxStatus, sandbox_status, sandbox_status_forget


@pytest.fixture(autouse=True)
def _fresh_status() -> Iterator[None]:
    sandbox_status_forget()
    yield
    sandbox_status_forget()


def test_a_working_sandbox_is_ok() -> None:
    assert sandbox_status() == SandboxStatus(ok=True, reason="bubblewrap")


def test_a_missing_bubblewrap_is_a_failing_check_with_the_fix(settings: Any) -> None:
    settings.SANDBOX_BWRAP = "/nonexistent/bwrap"

    status = sandbox_status()

    assert status.ok is False
    assert "apt-get install -y bubblewrap" in status.reason


def test_a_sandbox_environment_without_the_tools_is_a_failing_check(
    settings: Any, tmp_path: Path
) -> None:
    (tmp_path / "bin").mkdir()
    settings.SANDBOX_VENV = str(tmp_path)

    status = sandbox_status()

    assert status.ok is False
    assert "lacks python, pytest, ruff, bandit" in status.reason


def test_a_sandbox_that_cannot_start_a_command_is_a_failing_check(settings: Any) -> None:
    settings.SANDBOX_BWRAP = "/bin/false"

    status = sandbox_status()

    assert status == SandboxStatus(
        ok=False,
        reason="bubblewrap failed to start a command: no output",
        problem="bubblewrap cannot start a sandbox",
    )


def test_the_answer_is_cached_until_forgotten(settings: Any) -> None:
    first = sandbox_status()
    settings.SANDBOX_BWRAP = "/nonexistent/bwrap"

    cached = sandbox_status()
    sandbox_status_forget()

    assert (first.ok, cached.ok, sandbox_status().ok) == (True, True, False)


def test_the_cache_lasts_as_configured(settings: Any) -> None:
    settings.SANDBOX_STATUS_CACHE_SECONDS = 0
    sandbox_status()
    settings.SANDBOX_BWRAP = "/nonexistent/bwrap"

    assert sandbox_status().ok is False
