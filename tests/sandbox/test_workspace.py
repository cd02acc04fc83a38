"""Writing into a workspace never follows what sandboxed code left in it, and a project's
workspace is filled only under its lock, while no terminal of the project is live."""

import ctypes
import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from projects.workspace import (
    WorkspaceEscape,
    workspace_is_in_use,
    workspace_lease_acquire,
    workspace_materialize,
    workspace_path_for_project,
    workspace_remove,
    workspace_write_files,
)
from tests.sandbox.helpers import needs_root

PROJECT_ID = 900_000 + os.getpid() % 10_000


@pytest.fixture
def workspace(tmp_path: Path) -> Iterator[Path]:
    path = workspace_materialize(files={}, root=tmp_path)
    yield path
    workspace_remove(workspace=path)


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    path = tmp_path / "outside"
    path.mkdir()
    return path


@pytest.fixture
def project_workspace() -> Iterator[Path]:
    yield workspace_path_for_project(project_id=PROJECT_ID)
    workspace_remove(workspace=workspace_path_for_project(project_id=PROJECT_ID))


def test_files_land_in_the_workspace(workspace: Path) -> None:
    workspace_write_files(workspace=workspace, files={"a/b/c.py": "x = 1\n", "d.txt": b"d"})

    assert ((workspace / "a/b/c.py").read_text(), (workspace / "d.txt").read_bytes()) == (
        "x = 1\n",
        b"d",
    )


def test_a_linked_directory_stops_the_write_before_anything_is_made_outside(
    workspace: Path, outside: Path
) -> None:
    (workspace / "src").symlink_to(outside)

    with pytest.raises(WorkspaceEscape):
        workspace_write_files(workspace=workspace, files={"src/sub/app.py": "pwned\n"})

    assert list(outside.iterdir()) == []


def test_a_linked_file_is_not_written_through(workspace: Path, outside: Path) -> None:
    target = outside / "victim.txt"
    target.write_text("original\n")
    (workspace / "app.py").symlink_to(target)

    with pytest.raises(WorkspaceEscape):
        workspace_write_files(workspace=workspace, files={"app.py": "pwned\n"})

    assert target.read_text() == "original\n"


def exchange(a: Path, b: Path) -> None:
    """Swap two directory entries atomically (renameat2 with RENAME_EXCHANGE)."""
    libc = ctypes.CDLL(None, use_errno=True)
    at_fdcwd, rename_exchange = -100, 2
    if libc.renameat2(at_fdcwd, bytes(a), at_fdcwd, bytes(b), rename_exchange) != 0:
        raise OSError(ctypes.get_errno(), "renameat2")


def test_a_directory_swapped_for_a_link_during_the_write_never_lets_it_out(
    workspace: Path, outside: Path
) -> None:
    # What sandboxed code could do while the web process writes: swap ``pkg`` with a link to
    # a host directory and back, atomically and as fast as it can.
    (workspace / "pkg").mkdir()
    (workspace / "pkg-link").symlink_to(outside)
    stop = threading.Event()

    def swap() -> None:
        while not stop.is_set():
            exchange(workspace / "pkg", workspace / "pkg-link")

    swapper = threading.Thread(target=swap)
    swapper.start()
    refused = 0
    try:
        for n in range(2000):
            try:
                workspace_write_files(workspace=workspace, files={f"pkg/m{n}/f.py": "pwned\n"})
            except WorkspaceEscape:
                refused += 1
    finally:
        stop.set()
        swapper.join()

    assert list(outside.iterdir()) == []
    assert refused > 0  # the race was really run


def test_the_first_lease_fills_and_later_ones_do_not(project_workspace: Path) -> None:
    fills: list[Path] = []

    first = workspace_lease_acquire(project_id=PROJECT_ID, on_first=fills.append)
    second = workspace_lease_acquire(project_id=PROJECT_ID, on_first=fills.append)
    second.release()
    first.release()

    assert (fills, first.first, second.first) == ([project_workspace], True, False)


def test_a_lease_taken_after_every_other_ended_fills_again(project_workspace: Path) -> None:
    fills: list[Path] = []
    workspace_lease_acquire(project_id=PROJECT_ID, on_first=fills.append).release()

    workspace_lease_acquire(project_id=PROJECT_ID, on_first=fills.append).release()

    assert len(fills) == 2


def test_the_workspace_is_in_use_only_while_a_lease_lives(project_workspace: Path) -> None:
    lease = workspace_lease_acquire(project_id=PROJECT_ID)
    during = workspace_is_in_use(project_id=PROJECT_ID)
    lease.release()

    assert (during, workspace_is_in_use(project_id=PROJECT_ID)) == (True, False)


@needs_root
def test_the_last_lease_unmounts_and_files_persist_to_the_next(project_workspace: Path) -> None:
    lease = workspace_lease_acquire(project_id=PROJECT_ID)
    mounted = os.path.ismount(project_workspace)
    (project_workspace / "notes.txt").write_text("kept\n")
    lease.release()
    unmounted = not os.path.ismount(project_workspace)

    again = workspace_lease_acquire(project_id=PROJECT_ID)
    content = (project_workspace / "notes.txt").read_text()
    again.release()

    assert (mounted, unmounted, content) == (True, True, "kept\n")


def test_files_of_a_workspace_made_before_quotas_move_into_its_filesystem(
    project_workspace: Path,
) -> None:
    project_workspace.mkdir(parents=True, exist_ok=True)
    (project_workspace / "old.txt").write_text("from before\n")

    lease = workspace_lease_acquire(project_id=PROJECT_ID)
    content = (project_workspace / "old.txt").read_text()
    lease.release()

    assert content == "from before\n"
