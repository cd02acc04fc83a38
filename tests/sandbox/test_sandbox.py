"""The sandbox confines what it runs: no network, no host files, no writes outside the
workspace, bounded processes, memory, disk, output and time, and nothing left behind."""

import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from projects.sandbox import (
    MODE_BUBBLEWRAP,
    MODE_UNSAFE_LOCAL,
    SandboxLimits,
    SandboxUnavailable,
    kill_uid,
    processes_of_uid,
    sandbox_run,
)
from tests.sandbox.helpers import TEST_UID_BASE, TEST_UID_COUNT, sandbox_processes_after_settling


def sh(workspace: Path, script: str, limits: SandboxLimits | None = None) -> Any:
    return sandbox_run(workspace=workspace, argv=["sh", "-c", script], limits=limits)


def test_a_command_runs_in_the_workspace_and_its_output_is_captured(workspace: Path) -> None:
    result = sh(workspace, "python app.py; echo oops >&2; exit 3")

    assert (result.exit_code, result.stdout, result.stderr) == (3, "from app\n", "oops\n")


def test_every_result_says_it_ran_in_bubblewrap(workspace: Path) -> None:
    result = sh(workspace, "true")

    assert result.mode == MODE_BUBBLEWRAP


def test_files_written_in_the_workspace_reach_the_host(workspace: Path) -> None:
    sh(workspace, "mkdir -p out && echo built > out/result.txt")

    assert (workspace / "out" / "result.txt").read_text() == "built\n"


def test_the_command_runs_as_an_unprivileged_uid_of_the_pool(workspace: Path) -> None:
    result = sh(workspace, "id -u")

    assert TEST_UID_BASE <= int(result.stdout) < TEST_UID_BASE + TEST_UID_COUNT


def test_the_command_has_no_capabilities_and_cannot_gain_privileges(workspace: Path) -> None:
    result = sh(workspace, "grep -E '^(CapEff|CapPrm|NoNewPrivs)' /proc/self/status")

    assert result.stdout.split() == [
        "CapPrm:", "0000000000000000", "CapEff:", "0000000000000000", "NoNewPrivs:", "1",
    ]  # fmt: skip


def test_the_command_is_the_first_the_oom_killer_takes(workspace: Path) -> None:
    result = sh(workspace, "cat /proc/self/oom_score_adj")

    assert result.stdout == "1000\n"


def test_a_listener_on_the_host_cannot_be_reached(workspace: Path) -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    port = listener.getsockname()[1]
    try:
        result = sh(
            workspace,
            f"python -c \"import socket; socket.create_connection(('127.0.0.1', {port}), 2)\"",
        )
    finally:
        listener.close()

    assert result.exit_code != 0
    assert "ConnectionRefusedError" in result.stderr


def test_the_network_namespace_has_only_the_loopback_interface(workspace: Path) -> None:
    result = sh(workspace, "tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' '")

    assert result.stdout.split() == ["lo"]


def test_etc_shadow_cannot_be_read(workspace: Path) -> None:
    result = sh(workspace, "cat /etc/shadow")

    assert result.exit_code != 0
    assert result.stdout == ""


def test_another_projects_workspace_cannot_be_read(
    workspace: Path, make_workspace: Callable[..., Path]
) -> None:
    other = make_workspace({"secret.txt": "other project's secret\n"})

    result = sh(workspace, f"cat {other}/secret.txt; ls {other.parent}")

    assert "other project's secret" not in result.stdout
    assert result.exit_code != 0


@pytest.mark.parametrize("target", ["/usr/evil", "/etc/evil", "/evil", "/proc/evil"])
def test_writing_outside_the_workspace_fails(workspace: Path, target: str) -> None:
    result = sh(workspace, f"echo x > {target}")

    assert result.exit_code != 0


def test_a_link_left_in_the_workspace_never_changes_the_host_file_it_names(
    workspace: Path,
) -> None:
    before = os.stat("/etc/shadow")
    sh(workspace, "ln -s /etc/shadow shadow-link && mkdir d && ln -s /etc d/etc")

    sh(workspace, "true")  # the next run hands the tree over to its uid again

    after = os.stat("/etc/shadow")
    assert (after.st_mode, after.st_gid) == (before.st_mode, before.st_gid)


def test_the_toolchain_is_read_only(workspace: Path) -> None:
    venv_marker = Path(sys.prefix) / "evil"

    result = sh(workspace, f"echo x > {venv_marker}")

    assert result.exit_code != 0
    assert not venv_marker.exists()


def test_a_toolchain_that_lives_under_tmp_is_mounted(
    workspace: Path, settings: Any, tmp_path: Path
) -> None:
    venv = tmp_path / "checkout" / ".venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "marker").write_text("toolchain\n")
    settings.SANDBOX_VENV = str(venv)

    result = sh(workspace, f"cat {venv}/bin/marker")

    assert result.stdout == "toolchain\n"


def test_the_environment_holds_no_secret_of_the_host(
    workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AIFLOW_TEST_SECRET", "s3cr3t-value")

    result = sh(workspace, "env")

    assert "s3cr3t-value" not in result.stdout


def test_variables_passed_explicitly_reach_the_command(workspace: Path) -> None:
    result = sandbox_run(
        workspace=workspace, argv=["sh", "-c", "echo $GREETING"], env={"GREETING": "hello"}
    )

    assert result.stdout == "hello\n"


def test_output_is_cut_at_the_limit(workspace: Path) -> None:
    limits = SandboxLimits(output_bytes=1000, wall_seconds=10)

    result = sh(workspace, "head -c 200000 /dev/zero | tr '\\0' a", limits)

    assert (result.truncated, len(result.stdout)) == (True, 1000)


def test_the_wall_time_limit_kills_every_process_of_the_run(
    workspace: Path, short_limits: SandboxLimits
) -> None:
    short_limits.wall_seconds = 1

    result = sh(
        workspace, "sleep 60 & sleep 60 & nohup sleep 60 >/dev/null 2>&1 & wait", short_limits
    )

    assert result.timed_out
    assert sandbox_processes_after_settling() == []


def test_a_uid_sweep_kills_processes_that_left_the_sandbox() -> None:
    uid = TEST_UID_BASE + TEST_UID_COUNT - 1
    stray = subprocess.Popen(
        ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups", "sleep", "1000"]
    )
    wait_for_process_of(uid)

    kill_uid(uid)
    stray.wait(timeout=10)

    assert processes_of_uid(uid) == []


def wait_for_process_of(uid: int) -> None:
    deadline = time.monotonic() + 10
    while not processes_of_uid(uid) and time.monotonic() < deadline:
        time.sleep(0.05)


def test_the_run_reports_unsafe_local_mode_when_set_explicitly(
    workspace: Path, settings: Any
) -> None:
    settings.SANDBOX_MODE = MODE_UNSAFE_LOCAL

    result = sh(workspace, "echo hi")

    assert (result.mode, result.stdout) == (MODE_UNSAFE_LOCAL, "hi\n")


def test_nothing_runs_without_bubblewrap(workspace: Path, settings: Any) -> None:
    settings.SANDBOX_BWRAP = "/nonexistent/bwrap"

    with pytest.raises(SandboxUnavailable, match="bubblewrap"):
        sh(workspace, "echo hi")
