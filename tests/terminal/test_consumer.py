"""/ws/terminal/<project_id>/ runs a real shell in the sandbox on a PTY for a valid ticket
and an allowed Origin, and leaves nothing behind when the socket goes away."""

import asyncio
import json
import os
import re
import time
from typing import Any

import pytest
from channels.db import database_sync_to_async

from accounts.services import session_revoke, session_start
from pipeline.models import Run
from projects.artifacts import artifact_store_tree
from terminal.tickets import ticket_issue
from tests.factories import ProjectFactory
from tests.sandbox.helpers import sandbox_processes, sandbox_processes_after_settling
from tests.terminal.conftest import communicator, read_until, signed_in_ticket

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("project_workspace")]

PROMPT = "$ "
_ESCAPES = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def lines(output: str) -> list[str]:
    """The terminal's output as plain lines: escape sequences and carriage returns removed."""
    return [line.replace("\r", "") for line in _ESCAPES.sub("", output).split("\n")]


async def open_terminal(project_id: int, ticket: str) -> Any:
    comm = communicator(project_id, ticket)
    connected, _ = await comm.connect(timeout=15)
    assert connected
    await read_until(comm, PROMPT)
    return comm


async def run(comm: Any, command: str, marker: str) -> str:
    await comm.send_json_to({"type": "input", "data": f"{command}; echo {marker}\n"})
    return await read_until(comm, f"\n{marker}\r\n")


async def test_a_valid_ticket_runs_echo_hi(project: Any, ticket: str) -> None:
    comm = await open_terminal(project.pk, ticket)

    output = await run(comm, "echo hi", "END")
    await comm.disconnect()

    assert "hi" in lines(output)


async def test_the_shell_starts_in_the_projects_workspace(
    project: Any, ticket: str, project_workspace: Any
) -> None:
    (project_workspace / "hello.txt").write_text("from the workspace\n")
    comm = await open_terminal(project.pk, ticket)

    output = await run(comm, "cat hello.txt", "END")
    await comm.disconnect()

    assert "from the workspace" in lines(output)


async def test_a_resize_changes_stty_size(project: Any, ticket: str) -> None:
    comm = await open_terminal(project.pk, ticket)

    await comm.send_json_to({"type": "resize", "cols": 123, "rows": 45})
    output = await run(comm, "stty size", "END")
    await comm.disconnect()

    assert "45 123" in lines(output)


async def test_utf8_output_arrives_whole(project: Any, ticket: str) -> None:
    comm = await open_terminal(project.pk, ticket)

    output = await run(comm, "printf 'caf\\303\\251 \\342\\202\\254\\n'", "END")
    await comm.disconnect()

    assert "café €" in lines(output)


async def received_frames(comm: Any) -> list[str]:
    """Every text frame until the server closes the socket."""
    frames: list[str] = []
    while True:
        frame = await comm.receive_output(timeout=15)
        if frame["type"] != "websocket.send":
            return frames
        frames.append(frame["text"])


async def test_the_exit_frame_carries_the_shells_exit_code(project: Any, ticket: str) -> None:
    comm = await open_terminal(project.pk, ticket)

    await comm.send_json_to({"type": "input", "data": "exit 7\n"})
    frames = await received_frames(comm)

    assert json.loads(frames[-1]) == {"type": "exit", "code": 7}


async def test_a_disconnect_leaves_no_process_behind(project: Any, ticket: str) -> None:
    comm = await open_terminal(project.pk, ticket)
    await run(comm, "sleep 1000 & sleep 1000 & true", "STARTED")
    running = sandbox_processes()

    await comm.disconnect()
    left = await asyncio.to_thread(sandbox_processes_after_settling)

    assert (bool(running), left) == (True, [])


async def test_a_reused_ticket_is_refused(project: Any, ticket: str) -> None:
    first = await open_terminal(project.pk, ticket)
    await first.disconnect()

    connected, code = await communicator(project.pk, ticket).connect(timeout=15)

    assert (connected, code) == (False, 4401)


async def test_an_expired_ticket_is_refused(project: Any, user: Any, settings: Any) -> None:
    settings.TERMINAL_TICKET_TTL = 1
    ticket = await database_sync_to_async(signed_in_ticket)(user, project)
    await asyncio.sleep(2.1)

    connected, code = await communicator(project.pk, ticket).connect(timeout=15)

    assert (connected, code) == (False, 4401)


async def test_a_ticket_for_another_project_is_refused(user: Any, ticket: str) -> None:
    other_project = await database_sync_to_async(ProjectFactory)(owner=user)

    connected, code = await communicator(other_project.pk, ticket).connect(timeout=15)

    assert (connected, code) == (False, 4401)


async def test_a_ticket_bound_to_no_session_is_refused(project: Any, user: Any) -> None:
    ticket = ticket_issue(user_id=user.pk, project_id=project.pk, sid="")

    connected, code = await communicator(project.pk, ticket).connect(timeout=15)

    assert (connected, code) == (False, 4401)


async def test_a_missing_ticket_is_refused(project: Any) -> None:
    connected, code = await communicator(project.pk, None).connect(timeout=15)

    assert (connected, code) == (False, 4401)


async def test_a_made_up_ticket_is_refused(project: Any) -> None:
    connected, code = await communicator(project.pk, "not-a-ticket").connect(timeout=15)

    assert (connected, code) == (False, 4401)


async def test_a_foreign_origin_is_refused(project: Any, ticket: str) -> None:
    comm = communicator(project.pk, ticket, origin="https://evil.example")

    connected, code = await comm.connect(timeout=15)

    assert (connected, code) == (False, 4403)


async def test_a_missing_origin_is_refused(project: Any, ticket: str) -> None:
    connected, code = await communicator(project.pk, ticket, origin=None).connect(timeout=15)

    assert (connected, code) == (False, 4403)


async def test_a_project_deleted_after_the_ticket_was_issued_is_not_found(
    project: Any, ticket: str
) -> None:
    project_id = project.pk
    await database_sync_to_async(project.delete)()

    connected, code = await communicator(project_id, ticket).connect(timeout=15)

    assert (connected, code) == (False, 4404)


async def test_terminals_per_user_are_capped(
    project: Any, user: Any, ticket: str, settings: Any
) -> None:
    settings.TERMINAL_MAX_PER_USER = 1
    first = await open_terminal(project.pk, ticket)

    second = await database_sync_to_async(signed_in_ticket)(user, project)
    connected, code = await communicator(project.pk, second).connect(timeout=15)
    await first.disconnect()

    assert (connected, code) == (False, 4429)


async def test_the_terminal_refuses_sockets_when_disabled(
    project: Any, ticket: str, settings: Any
) -> None:
    settings.TERMINAL_ENABLED = False

    connected, _ = await communicator(project.pk, ticket).connect(timeout=15)

    assert connected is False


async def test_an_idle_terminal_is_closed(project: Any, ticket: str, settings: Any) -> None:
    settings.TERMINAL_IDLE_SECONDS = 1
    comm = await open_terminal(project.pk, ticket)

    frames = await received_frames(comm)
    left = await asyncio.to_thread(sandbox_processes_after_settling)

    assert (json.loads(frames[-1])["reason"], left) == ("idle", [])


async def test_output_is_read_no_faster_than_the_rate_cap_allows(
    project: Any, ticket: str, settings: Any
) -> None:
    # The shell writes 4 KiB blocks; under a 1000 B/s cap no frame may carry more than the
    # bucket holds (1000 bytes), and everything still arrives.
    settings.TERMINAL_OUTPUT_BYTES_PER_SECOND = 1000
    comm = await open_terminal(project.pk, ticket)

    await comm.send_json_to(
        {"type": "input", "data": "head -c 3000 /dev/zero | tr '\\0' x; echo\n"}
    )
    frames: list[str] = []
    while "x" * 10 + "\r\n" not in "".join(frames):
        frames.append((await comm.receive_output(timeout=15))["text"])
    await comm.disconnect()

    assert max(len(f.encode()) for f in frames) <= 1000
    assert "".join(frames).count("x") >= 3000


async def test_a_new_workspace_starts_with_the_latest_runs_files(project: Any, ticket: str) -> None:
    await database_sync_to_async(store_run_tree)(project, {"src/old.py": "print('older')\n"})
    await database_sync_to_async(store_run_tree)(project, {"src/app.py": "print('generated')\n"})
    comm = await open_terminal(project.pk, ticket)

    output = await run(comm, "python src/app.py; ls src", "END")
    await comm.disconnect()

    assert "generated" in lines(output)
    assert "app.py" in lines(output)  # `ls src`: the newer run's file only
    assert "old.py" not in "".join(lines(output))


def store_run_tree(project: Any, files: dict[str, str | bytes]) -> None:
    run = Run.objects.create(project=project, prompt="p", status="completed")
    artifact_store_tree(run=run, files=files)


async def test_3000_bytes_take_at_least_about_2_seconds_at_1000_bytes_per_second(
    project: Any, ticket: str, settings: Any
) -> None:
    # The bucket starts full (1000 bytes); the other 2000 can only come at 1000 B/s.
    settings.TERMINAL_OUTPUT_BYTES_PER_SECOND = 1000
    comm = await open_terminal(project.pk, ticket)

    started = time.monotonic()
    await comm.send_json_to(
        {"type": "input", "data": "head -c 3000 /dev/zero | tr '\\0' x; echo\n"}
    )
    received = ""
    while received.count("x") < 3000:
        received += (await comm.receive_output(timeout=15))["text"]
    elapsed = time.monotonic() - started
    await comm.disconnect()

    assert elapsed >= 1.9


async def test_revoking_the_session_ends_its_terminal(project: Any, user: Any) -> None:
    def signed_in_ticket() -> tuple[Any, str]:
        session, _ = session_start(user=user, ip="127.0.0.1", user_agent="pytest")
        return session, ticket_issue(user_id=user.pk, project_id=project.pk, sid=str(session.pk))

    session, ticket = await database_sync_to_async(signed_in_ticket)()
    comm = await open_terminal(project.pk, ticket)
    await run(comm, "sleep 1000 & true", "STARTED")

    await database_sync_to_async(session_revoke)(session=session, reason="logout")
    frames: list[dict[str, Any]] = []
    while True:
        frame = await comm.receive_output(timeout=15)
        frames.append(frame)
        if frame["type"] == "websocket.close":
            break
    left = await asyncio.to_thread(sandbox_processes_after_settling)

    exit_frame = json.loads(frames[-2]["text"])
    assert (exit_frame["reason"], frames[-1]["code"], left) == ("session_revoked", 4401, [])


async def test_a_terminal_of_a_revoked_session_is_refused(project: Any, user: Any) -> None:
    def revoked_ticket() -> str:
        session, _ = session_start(user=user, ip="127.0.0.1", user_agent="pytest")
        session_revoke(session=session, reason="logout")
        return ticket_issue(user_id=user.pk, project_id=project.pk, sid=str(session.pk))

    ticket = await database_sync_to_async(revoked_ticket)()

    connected, code = await communicator(project.pk, ticket).connect(timeout=15)

    assert (connected, code) == (False, 4401)


async def frames_waiting(comm: Any) -> list[dict[str, Any]]:
    """Every frame the server has sent and the test has not read yet."""
    frames = []
    while not await comm.receive_nothing(timeout=1):
        frames.append(await comm.receive_output(timeout=5))
    return frames


async def test_input_the_shell_does_not_read_is_kept_and_holds_up_no_other_terminal(
    project: Any, user: Any, ticket: str
) -> None:
    # The first shell sleeps without reading its terminal (raw mode: the PTY stops taking
    # input once its buffer is full), so 600 KB of keystrokes wait in the consumer. Writing
    # them by blocking would hold the thread every socket's database calls share, and give
    # up with an error frame; instead a second terminal opens and answers meanwhile.
    first = await open_terminal(project.pk, ticket)
    await first.send_json_to({"type": "input", "data": "stty -icanon -echo; sleep 60\n"})
    for _ in range(10):
        await first.send_json_to({"type": "input", "data": "y" * 60_000})

    other_ticket = await database_sync_to_async(signed_in_ticket)(user, project)
    second = await open_terminal(project.pk, other_ticket)
    output = await run(second, "echo second", "END")
    await second.disconnect()
    waiting = await frames_waiting(first)
    await first.disconnect()

    assert "second" in lines(output)
    assert [f for f in waiting if '"type": "error"' in (f.get("text") or "")] == []


async def test_the_terminal_works_in_a_size_capped_workspace_unmounted_when_it_closes(
    project: Any, ticket: str, project_workspace: Any, settings: Any
) -> None:
    settings.SANDBOX_WORKSPACE_MB = 32
    comm = await open_terminal(project.pk, ticket)

    output = await run(comm, "head -c 64M /dev/zero > fill.bin; df -m --output=size .", "END")
    await comm.disconnect()
    size = int([line for line in lines(output) if line.strip().isdigit()][0])

    assert ("No space left on device" in output, size <= 32) == (True, True)
    assert os.path.ismount(project_workspace) is False
