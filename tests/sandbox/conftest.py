"""Fixtures of the sandbox tests: a private uid pool and throwaway workspaces."""

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from projects.sandbox import SandboxLimits
from projects.workspace import workspace_materialize, workspace_remove
from tests.sandbox.helpers import use_test_uid_pool


@pytest.fixture(autouse=True)
def _test_uid_pool(settings: Any, tmp_path_factory: pytest.TempPathFactory) -> None:
    use_test_uid_pool(settings, str(tmp_path_factory.mktemp("slots")))


@pytest.fixture
def make_workspace() -> Iterator[Callable[..., Path]]:
    made: list[Path] = []

    def make(files: dict[str, str | bytes] | None = None) -> Path:
        path = workspace_materialize(files=files or {"README.md": "hello\n"})
        made.append(path)
        return path

    yield make
    for path in made:
        workspace_remove(workspace=path)


@pytest.fixture
def workspace(make_workspace: Callable[..., Path]) -> Path:
    return make_workspace({"README.md": "hello\n", "app.py": "print('from app')\n"})


@pytest.fixture
def short_limits() -> SandboxLimits:
    """Tight limits that keep the containment tests short."""
    return SandboxLimits(
        cpu_seconds=10,
        memory_mb=512,
        processes=32,
        file_size_mb=16,
        open_files=64,
        wall_seconds=4,
        output_bytes=100_000,
        tmp_mb=16,
    )
