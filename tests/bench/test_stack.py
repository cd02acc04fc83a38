"""The stack's process list and its CPU accounting from /proc."""

import os
import signal
import subprocess
import sys

from bench.stack import ROOT, procfile, tree_cpu_seconds


def test_the_procfile_names_every_process_the_stack_starts() -> None:
    assert {"web", "worker_llm", "worker_sandbox", "beat"} <= set(procfile())


def test_cpu_seconds_count_children_that_already_exited() -> None:
    before = tree_cpu_seconds(os.getpid())
    subprocess.run(
        [sys.executable, "-c", "x = 0\nfor i in range(3_000_000): x += i"],
        check=True,
    )

    assert tree_cpu_seconds(os.getpid()) - before >= 0.05


def test_a_sigterm_runs_the_finally_blocks_that_stop_the_stack(tmp_path) -> None:
    done = tmp_path / "stopped"
    script = (
        "import sys, time\n"
        "from bench.stack import stop_on_termination\n"
        "stop_on_termination()\n"
        "try:\n"
        "    print('ready', flush=True)\n"
        "    time.sleep(30)\n"
        "finally:\n"
        f"    open({str(done)!r}, 'w').write('stack closed')\n"
    )
    process = subprocess.Popen(
        [sys.executable, "-c", script], stdout=subprocess.PIPE, cwd=ROOT, text=True
    )
    assert process.stdout is not None
    assert process.stdout.readline().strip() == "ready"
    process.send_signal(signal.SIGTERM)

    assert process.wait(timeout=10) == 128 + signal.SIGTERM
    assert done.read_text() == "stack closed"
