"""A benchmark told to stop stops the stack it started."""

import signal
import subprocess
import sys

from bench.stack import ROOT


def test_a_sigterm_runs_the_finally_blocks_that_stop_the_stack(tmp_path) -> None:
    done = tmp_path / "stopped"
    script = (
        "import sys, time\n"
        "from bench.termination import stop_on_termination\n"
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
