"""The bench's memory figures: a process tree's PSS, each process counted once."""

import os
import subprocess
import sys

from bench.figures_more import statements_per_run
from bench.memory import Sampler, role_memory, tree_pids


def test_a_tree_holds_the_process_and_its_children():
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])  # noqa: S603
    try:
        assert {os.getpid(), child.pid} <= set(tree_pids(os.getpid()))
        assert child.pid in tree_pids(os.getpid())
        found = role_memory(child.pid)
    finally:
        child.kill()
        child.wait()

    assert (found.processes, [pid for pid, _, _ in found.each]) == (1, [child.pid])
    assert 0 < found.pss_mb <= found.rss_mb


def test_the_sampler_keeps_the_peak_of_the_total():
    with Sampler(lambda: {"bench": os.getpid()}, interval=0.05) as sampler:
        ballast = bytearray(64 * 1024 * 1024)
        ballast[::4096] = b"x" * len(ballast[::4096])  # touched: resident
        sampler._stop.wait(0.3)
        del ballast

    assert sampler.peak_mb >= 64
    assert sampler.peak["bench"].processes == 1


def test_statements_per_run_divides_what_the_runs_and_the_rest_sent():
    before = {"7": 3, "other": 10}
    after = {"7": 103, "8": 120, "9": 5, "other": 30}

    assert statements_per_run(before, after, [7, 8]) == {
        "in_tasks": 110.0,
        "elsewhere": 10.0,
        "total": 120.0,
    }
