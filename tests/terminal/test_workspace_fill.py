"""A terminal's workspace is filled from the project's latest run once: by the first terminal
to open it, under the project's lock (terminals opened at the same moment fill it once), and
only while it is empty (files left by earlier terminals are kept, never overwritten)."""

import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from pipeline.models import Run
from projects.artifacts import artifact_store_tree
from terminal.services import terminal_workspace_open

pytestmark = [pytest.mark.django_db(transaction=True)]

OPENERS = 6


def store_run_tree(project: Any, files: dict[str, str | bytes]) -> None:
    run = Run.objects.create(project=project, prompt="p", status="completed")
    artifact_store_tree(run=run, files=files)


def fills(caplog: pytest.LogCaptureFixture) -> int:
    """How many times a workspace was filled (``terminal.workspace_filled`` in the log)."""
    return sum(
        1
        for record in caplog.records
        if isinstance(record.msg, dict) and record.msg.get("event") == "terminal.workspace_filled"
    )


def tree(path: Path) -> dict[str, str]:
    return {
        str(file.relative_to(path)): file.read_text() for file in path.rglob("*") if file.is_file()
    }


def test_terminals_opened_at_the_same_moment_fill_the_workspace_once(
    project: Any, project_workspace: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store_run_tree(project, {"app.py": "print('v1')\n"})
    start = threading.Barrier(OPENERS)
    caplog.clear()

    def open_one(_: int) -> Any:
        start.wait()
        return terminal_workspace_open(user_id=project.owner_id, project_id=project.pk)

    with caplog.at_level(logging.INFO), ThreadPoolExecutor(OPENERS) as pool:
        leases = list(pool.map(open_one, range(OPENERS)))
    files = tree(project_workspace)
    for lease in leases:
        lease.release()

    assert fills(caplog) == 1
    assert sorted(lease.first for lease in leases) == [False] * (OPENERS - 1) + [True]
    assert files == {"app.py": "print('v1')\n"}


def test_a_workspace_with_files_in_it_is_left_alone(
    project: Any, project_workspace: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store_run_tree(project, {"app.py": "print('v1')\n"})
    first = terminal_workspace_open(user_id=project.owner_id, project_id=project.pk)
    (project_workspace / "app.py").write_text("print('edited in the terminal')\n")
    (project_workspace / "notes.txt").write_text("mine\n")
    first.release()
    store_run_tree(project, {"app.py": "print('v2')\n", "new.py": "print('new')\n"})
    caplog.clear()

    with caplog.at_level(logging.INFO):
        again = terminal_workspace_open(user_id=project.owner_id, project_id=project.pk)
    files = tree(project_workspace)
    again.release()

    assert again.first is True  # the only terminal: it would fill an empty workspace
    assert fills(caplog) == 0
    assert files == {"app.py": "print('edited in the terminal')\n", "notes.txt": "mine\n"}


def test_an_empty_workspace_gets_the_newest_runs_tree_only(
    project: Any, project_workspace: Path
) -> None:
    store_run_tree(project, {"old.py": "print('older')\n", "app.py": "print('v1')\n"})
    store_run_tree(project, {"app.py": "print('v2')\n"})

    lease = terminal_workspace_open(user_id=project.owner_id, project_id=project.pk)
    files = tree(project_workspace)
    lease.release()

    assert files == {"app.py": "print('v2')\n"}
