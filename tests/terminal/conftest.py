"""Fixtures of the terminal tests: the tests' own sandbox uid pool, tickets, a socket."""

from collections.abc import Iterator
from typing import Any

import pytest
from channels.routing import URLRouter
from channels.testing import WebsocketCommunicator

from projects.sandbox import kill_uid
from projects.workspace import workspace_for_project, workspace_remove
from terminal.routing import websocket_urlpatterns
from terminal.tickets import ticket_issue
from tests.sandbox.helpers import TEST_UID_BASE, TEST_UID_COUNT, use_test_uid_pool

ORIGIN = "http://localhost:8001"


@pytest.fixture(autouse=True)
def _test_uid_pool(settings: Any, tmp_path_factory: pytest.TempPathFactory) -> None:
    use_test_uid_pool(settings, str(tmp_path_factory.mktemp("slots")))


@pytest.fixture
def project_workspace(project: Any) -> Iterator[Any]:
    project_id = project.pk
    yield workspace_for_project(project_id=project_id)
    workspace_remove(workspace=workspace_for_project(project_id=project_id))


@pytest.fixture(autouse=True)
def _no_shell_outlives_its_test() -> Iterator[None]:
    """A test that fails before disconnecting must not leave shells to the next test."""
    yield
    for uid in range(TEST_UID_BASE, TEST_UID_BASE + TEST_UID_COUNT):
        kill_uid(uid)


def signed_in_ticket(user: Any, project: Any) -> str:
    """A terminal ticket of ``user`` for ``project``, bound to a fresh device session."""
    from accounts.services import session_start

    session, _ = session_start(user=user, ip="127.0.0.1", user_agent="pytest")
    return ticket_issue(user_id=user.pk, project_id=project.pk, sid=str(session.pk))


@pytest.fixture
def ticket(user: Any, project: Any) -> str:
    return signed_in_ticket(user, project)


def communicator(project_id: int, ticket: str | None, origin: str | None = ORIGIN) -> Any:
    """A WebSocket client on ``/ws/terminal/<project_id>/`` with the given ticket and Origin."""
    path = f"/ws/terminal/{project_id}/" + (f"?ticket={ticket}" if ticket is not None else "")
    headers = [(b"origin", origin.encode())] if origin is not None else []
    return WebsocketCommunicator(URLRouter(websocket_urlpatterns), path, headers=headers)


async def read_until(comm: Any, needle: str, timeout: float = 15.0) -> str:
    """Text output received until ``needle`` appears (or the socket stops talking)."""
    text = ""
    while needle not in text:
        frame = await comm.receive_output(timeout=timeout)
        if frame["type"] != "websocket.send":
            break
        text += frame.get("text") or ""
    return text
