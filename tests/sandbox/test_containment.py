"""A fork bomb, a 2 GB allocation and a disk filler are contained: the run ends within its
limits, the web app's /health keeps answering meanwhile, and no process of the run remains."""

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from django.test import Client

from projects.sandbox import SandboxLimits, SandboxResult, sandbox_run
from tests.sandbox.helpers import sandbox_processes_after_settling

pytestmark = [pytest.mark.slow, pytest.mark.django_db]

# The classic bomb; the first shell stays alive so only the wall-time limit can end the run.
FORK_BOMB = ":(){ :|:& };:; sleep 60"


def run_while_checking_health(
    workspace: Path, script: str, limits: SandboxLimits
) -> tuple[SandboxResult, list[dict[str, Any]]]:
    """Run ``script`` in the sandbox and call /health while it runs (and once after)."""
    client = Client()
    health: list[dict[str, Any]] = []
    with ThreadPoolExecutor(max_workers=1) as pool:
        future = pool.submit(
            sandbox_run, workspace=workspace, argv=["bash", "-c", script], limits=limits
        )
        while not future.done():
            health.append(client.get("/health").json())
        result = future.result()
    health.append(client.get("/health").json())
    return result, health


def database_and_redis(health: list[dict[str, Any]]) -> set[tuple[str, str]]:
    return {(h["checks"]["database"], h["checks"]["redis"]) for h in health}


def test_a_fork_bomb_is_contained(workspace: Path, short_limits: SandboxLimits) -> None:
    result, health = run_while_checking_health(workspace, FORK_BOMB, short_limits)

    assert result.timed_out
    assert database_and_redis(health) == {("ok", "ok")}
    assert sandbox_processes_after_settling() == []


def test_a_fork_bomb_hits_the_process_limit(workspace: Path, short_limits: SandboxLimits) -> None:
    result, _ = run_while_checking_health(workspace, FORK_BOMB, short_limits)

    assert "retry" in result.stderr or "Resource temporarily unavailable" in result.stderr


def test_a_2gb_allocation_is_refused(workspace: Path, short_limits: SandboxLimits) -> None:
    result, health = run_while_checking_health(
        workspace, "python -c 'b = bytearray(2 * 1024 ** 3); print(len(b))'", short_limits
    )

    assert (result.exit_code != 0, "MemoryError" in result.stderr) == (True, True)
    assert database_and_redis(health) == {("ok", "ok")}
    assert sandbox_processes_after_settling() == []


def test_a_disk_filler_stops_at_the_file_size_limit(
    workspace: Path, short_limits: SandboxLimits
) -> None:
    result, health = run_while_checking_health(
        workspace, "head -c 2G /dev/zero > filler.bin", short_limits
    )

    assert result.exit_code != 0
    assert (workspace / "filler.bin").stat().st_size <= short_limits.file_size_mb * 1024 * 1024
    assert database_and_redis(health) == {("ok", "ok")}
    assert sandbox_processes_after_settling() == []


def test_a_tmp_filler_stops_at_the_tmpfs_size(workspace: Path, short_limits: SandboxLimits) -> None:
    short_limits.file_size_mb = 1024

    result, _ = run_while_checking_health(
        workspace, "head -c 1G /dev/zero > /tmp/filler.bin", short_limits
    )

    assert "No space left on device" in result.stderr
