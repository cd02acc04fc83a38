"""Fixtures of the delivery tests: a local forge (its API stub and real git behind
``git http-backend``) holding the imported repository, the project's connection to it."""

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pipeline.models import RunDelivery
from repositories.services import forge_connection_put
from tests.forge_stub import Forge
from tests.git_server import git, make_repository

TOKEN = "ghp_Dl1veryT0kenXy9"
HOOK_SECRET = "whsec-review-5b2c"
BASE_FILES: dict[str, bytes | str] = {
    "app.py": "print('v1')\n",
    "README.md": "# app\n",
    "logo.png": b"\x89PNG\r\n\x1a\n\x00\x00binary",
}


@pytest.fixture(autouse=True)
def _media(tmp_path: Path, settings: Any) -> None:
    settings.MEDIA_ROOT = str(tmp_path / "media")


@pytest.fixture
def local_git(settings: Any) -> None:
    """Remotes may be on this machine (loopback, file://), as the tests need."""
    settings.REPOSITORY_ALLOW_LOCAL = True
    settings.REPOSITORY_ALLOWED_HOSTS = ["127.0.0.1", "localhost"]


@pytest.fixture
def forge_kind() -> str:
    return "github"


@pytest.fixture
def forge(tmp_path: Path, local_git: None, forge_kind: str) -> Iterator[Forge]:
    """A local forge whose repository ``acme/app`` holds ``BASE_FILES`` on main (``.base``)."""
    with Forge(forge_kind, tmp_path / "srv", token=TOKEN) as stub:
        work = tmp_path / "work"
        stub.base = make_repository(work, BASE_FILES)
        git("push", "-q", str(stub.bare), "main", cwd=work)
        yield stub


@pytest.fixture
def connection(forge: Forge, project: Any) -> Any:
    return forge_connection_put(
        project=project,
        kind=forge.kind,
        api_url=forge.api_url,
        repository=forge.repository,
        token=TOKEN,
        webhook_secret=HOOK_SECRET,
    )


def branch_log(bare: Path, branch: str) -> list[str]:
    """The commits of ``branch`` in ``bare``, newest first."""
    return git("rev-list", f"refs/heads/{branch}", cwd=bare).split()


def delivery_of(run: Any) -> RunDelivery:
    return RunDelivery.objects.get(run=run)
