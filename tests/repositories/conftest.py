"""Fixtures of the repositories tests: a sealed place to import in, local git allowed."""

import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest


@dataclass
class Sealed:
    """A directory tree an import runs in: the working directory and the temporary directory
    both inside ``root``, so anything an import writes anywhere near shows up here."""

    root: Path
    cwd: Path
    tmp: Path

    def snapshot(self) -> set[str]:
        """Every path under ``root`` (files, links, directories), the temporary one included."""
        found = set()
        for folder, dirs, files in os.walk(self.root):
            for name in dirs + files:
                found.add(os.path.relpath(os.path.join(folder, name), self.root))
        return found


@pytest.fixture
def sealed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Sealed]:
    place = Sealed(
        root=tmp_path / "sealed", cwd=tmp_path / "sealed" / "cwd", tmp=tmp_path / "sealed" / "tmp"
    )
    place.cwd.mkdir(parents=True)
    place.tmp.mkdir()
    monkeypatch.chdir(place.cwd)
    monkeypatch.setattr(tempfile, "tempdir", str(place.tmp))
    yield place


@pytest.fixture
def local_git(settings) -> None:
    """Imports and remotes may use this machine (loopback, file://), as tests need."""
    settings.REPOSITORY_ALLOW_LOCAL = True
    settings.REPOSITORY_ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
