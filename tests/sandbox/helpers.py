"""Helpers shared by the sandbox and terminal tests."""

import os
import time
from typing import Any

import pytest

from projects.sandbox import processes_of_uid

# Workspaces are filesystems of their own (mounted images), per-run uids are real host uids:
# both need root. A test of them skips, saying so, rather than pass without checking.
needs_root = pytest.mark.skipif(
    os.geteuid() != 0,
    reason="needs root: workspace filesystems are mounted (and unmounted) only by root",
)

# A uid pool of this test process's own, so "no process is left" looks only at what these
# tests ran: production uses 200000.., and other pytest runs on the machine (parallel
# checkouts) get other ranges.
TEST_UID_COUNT = 8
TEST_UID_BASE = 300000 + (os.getpid() % 8192) * TEST_UID_COUNT


def use_test_uid_pool(settings: Any, slot_dir: str) -> None:
    settings.SANDBOX_UID_BASE = TEST_UID_BASE
    settings.SANDBOX_UID_COUNT = TEST_UID_COUNT
    settings.SANDBOX_SLOT_DIR = slot_dir


def sandbox_processes() -> list[int]:
    """Pids of every process running under a uid of the tests' pool."""
    pids: list[int] = []
    for uid in range(TEST_UID_BASE, TEST_UID_BASE + TEST_UID_COUNT):
        pids.extend(processes_of_uid(uid))
    return pids


def sandbox_processes_after_settling(seconds: float = 5.0) -> list[int]:
    """The pool's processes once the kernel had a moment to reap the killed ones."""
    deadline = time.monotonic() + seconds
    pids = sandbox_processes()
    while pids and time.monotonic() < deadline:
        time.sleep(0.1)
        pids = sandbox_processes()
    return pids
