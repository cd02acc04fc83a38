"""PtySession, without Channels: a shell in the sandbox on a real PTY."""

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from projects.workspace import workspace_materialize, workspace_remove
from terminal.pty_session import PtySession, PtySessionError
from tests.sandbox.helpers import sandbox_processes, sandbox_processes_after_settling


@pytest.fixture
def workspace() -> Iterator[Path]:
    path = workspace_materialize(files={"notes.txt": "hello\n"})
    yield path
    workspace_remove(workspace=path)


@pytest.fixture
def shell(workspace: Path) -> Iterator[PtySession]:
    session = PtySession(workspace=workspace, argv=["/bin/bash", "--norc", "-i"], cols=80, rows=24)
    session.start()
    session.read_until("$ ")
    yield session
    session.close()


_ESCAPES = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def run(shell: PtySession, command: str) -> list[str]:
    """Lines the shell printed for ``command`` (up to a marker echoed after it), as plain text."""
    shell.write(f"{command}; echo __END__\n")
    text = _ESCAPES.sub("", shell.read_until("\n__END__"))
    return [line.replace("\r", "") for line in text.split("\n")]


def test_a_command_runs_and_its_output_is_read(shell: PtySession) -> None:
    assert "hi" in run(shell, "echo hi")


def test_the_shell_runs_in_the_workspace(shell: PtySession) -> None:
    assert "hello" in run(shell, "cat notes.txt")


def test_the_shell_has_the_pty_as_its_controlling_terminal(shell: PtySession) -> None:
    # bash turns job control ("m" in $-) on only when it owns a controlling terminal
    assert "monitor" in run(shell, "case $- in *m*) echo monitor;; esac")


def test_resize_changes_the_window_size_the_shell_sees(shell: PtySession) -> None:
    shell.resize(132, 50)

    assert "50 132" in run(shell, "stty size")


def test_a_size_out_of_range_is_refused(shell: PtySession) -> None:
    with pytest.raises(PtySessionError):
        shell.resize(0, 24)


def test_a_character_split_across_reads_is_decoded_whole(shell: PtySession) -> None:
    lines = run(shell, r"printf 'x\342'; sleep 0.5; printf '\202\254x\n'")

    assert "x€x" in lines


def test_exit_code_is_reported_once_the_shell_exits(shell: PtySession) -> None:
    shell.write("exit 3\n")

    assert shell.wait(timeout=10) == 3


def test_read_returns_none_once_the_shell_is_gone(shell: PtySession) -> None:
    shell.write("exit 0\n")
    shell.wait(timeout=10)

    shell.read_until("never printed", timeout=2)

    assert shell.read() is None


def test_close_kills_every_process_the_shell_started(shell: PtySession) -> None:
    run(shell, "sleep 1000 & (sleep 1000 &) ; nohup sleep 1000 >/dev/null 2>&1 &")
    running = sandbox_processes()

    shell.close()

    assert (bool(running), sandbox_processes_after_settling()) == (True, [])


def test_a_session_cannot_be_started_twice(shell: PtySession) -> None:
    with pytest.raises(PtySessionError):
        shell.start()


def test_nothing_can_be_written_to_a_session_never_started(workspace: Path) -> None:
    session = PtySession(workspace=workspace, argv=["/bin/true"])

    with pytest.raises(PtySessionError):
        session.write("echo hi\n")
