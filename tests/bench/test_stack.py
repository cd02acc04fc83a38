"""The stack's process list and its CPU accounting from /proc."""

import os
import subprocess
import sys

from bench.stack import procfile, tree_cpu_seconds


def test_the_procfile_names_every_process_the_stack_starts() -> None:
    assert {"web", "worker_llm", "worker_sandbox", "beat"} <= set(procfile())


def test_cpu_seconds_count_children_that_already_exited() -> None:
    before = tree_cpu_seconds(os.getpid())
    subprocess.run(
        [sys.executable, "-c", "x = 0\nfor i in range(3_000_000): x += i"],
        check=True,
    )

    assert tree_cpu_seconds(os.getpid()) - before >= 0.05
