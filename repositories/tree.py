"""An imported tree, and the entry-by-entry checks every import passes before it keeps a byte.

Both importers (archives and git) feed their entries, one at a time, to a ``TreeBuilder``:
each path is normalised and must stay inside the tree (no absolute path, no ``..``, no
backslash or control character, no entry below a symbolic link), each entry must be a
regular file, a directory or a symbolic link whose target stays inside the tree, and the
counts and sizes are checked against the limits before the content is read. The result is an
``ImportedTree`` held in memory; nothing is written to disk unless ``write_to`` is called, and
that writes only below the directory it is given.
"""

from __future__ import annotations

import os
import stat
import time
from dataclasses import dataclass, field
from pathlib import Path

from django.conf import settings

from common.content import is_binary

from .errors import ImportRefused

MAX_PATH_CHARS = 1024
MAX_COMPONENT_CHARS = 255
MAX_LINK_HOPS = 40


@dataclass(frozen=True)
class ImportLimits:
    """The limits of one import; ``from_settings`` reads the ``REPOSITORY_IMPORT_*`` ones."""

    max_total_bytes: int
    max_files: int
    max_file_bytes: int
    max_depth: int
    max_fetch_bytes: int
    timeout_seconds: float

    @classmethod
    def from_settings(cls) -> ImportLimits:
        return cls(
            max_total_bytes=settings.REPOSITORY_IMPORT_MAX_BYTES,
            max_files=settings.REPOSITORY_IMPORT_MAX_FILES,
            max_file_bytes=settings.REPOSITORY_IMPORT_MAX_FILE_BYTES,
            max_depth=settings.REPOSITORY_IMPORT_MAX_DEPTH,
            max_fetch_bytes=settings.REPOSITORY_IMPORT_MAX_FETCH_BYTES,
            timeout_seconds=settings.REPOSITORY_IMPORT_TIMEOUT_SECONDS,
        )


@dataclass(frozen=True)
class Skipped:
    """An entry left out of the tree on purpose, and why (not a refusal)."""

    path: str
    reason: str


@dataclass
class ImportedTree:
    """What an import produced: the files and what was left out.

    ``files`` maps each path (``/``-separated, relative) to its bytes; ``binary`` names the
    ones that must never be shown to a model (they are kept, and delivered unchanged);
    ``executable`` the ones with an executable mode; ``symlinks`` in-tree symbolic links
    (path -> relative target). ``commit`` is the resolved commit of a git import (the base a
    delivery builds on), ``ref`` what was asked for; both are None for an archive.
    """

    source: str  # "git" or "archive"
    files: dict[str, bytes] = field(default_factory=dict)
    binary: set[str] = field(default_factory=set)
    executable: set[str] = field(default_factory=set)
    symlinks: dict[str, str] = field(default_factory=dict)
    skipped: list[Skipped] = field(default_factory=list)
    commit: str | None = None
    ref: str | None = None
    url: str | None = None

    @property
    def total_bytes(self) -> int:
        return sum(len(data) for data in self.files.values())

    def text_files(self) -> dict[str, str]:
        """The files a model may be shown: every file not flagged binary, decoded."""
        return {
            path: data.decode("utf-8")
            for path, data in self.files.items()
            if path not in self.binary
        }

    def write_to(self, directory: Path) -> None:
        """Write the tree below ``directory`` (which must exist and be empty of these paths).

        Every path was checked when the tree was built; files are created exclusively and
        never through a link (``O_NOFOLLOW``), and links are made last, so no write can be
        steered outside ``directory``.
        """
        root = directory.resolve()
        for path, data in sorted(self.files.items()):
            target = root / path
            target.parent.mkdir(parents=True, exist_ok=True)
            if not target.parent.resolve().is_relative_to(root):
                raise ImportRefused(f"{path}: would be written outside the tree.", code="outside")
            flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
            mode = 0o755 if path in self.executable else 0o644
            descriptor = os.open(target, flags, mode)
            with os.fdopen(descriptor, "wb") as handle:
                handle.write(data)
        for path, link_target in sorted(self.symlinks.items()):
            target = root / path
            target.parent.mkdir(parents=True, exist_ok=True)
            os.symlink(link_target, target)


def normalise(raw: str) -> str:
    """The tree-relative form of an entry's path, or ``ImportRefused`` naming the entry."""
    shown = raw if len(raw) <= 200 else raw[:200] + "…"
    if not raw or raw in (".", "./"):
        return ""
    if any(ord(char) < 32 or ord(char) == 127 for char in raw):
        raise ImportRefused(f"{shown!r}: control characters in a path.", code="bad_path")
    if "\\" in raw:
        raise ImportRefused(f"{shown}: a backslash in a path.", code="bad_path")
    if raw.startswith("/") or (len(raw) > 1 and raw[1] == ":" and raw[0].isalpha()):
        raise ImportRefused(f"{shown}: an absolute path.", code="absolute_path")
    parts = [part for part in raw.split("/") if part not in ("", ".")]
    if ".." in parts:
        raise ImportRefused(f"{shown}: a path that leaves the tree (..).", code="path_outside")
    path = "/".join(parts)
    if len(path) > MAX_PATH_CHARS or any(len(part) > MAX_COMPONENT_CHARS for part in parts):
        raise ImportRefused(f"{shown}: a path too long.", code="bad_path")
    return path


def _is_git_metadata(path: str) -> bool:
    return any(part.lower() == ".git" for part in path.split("/"))


def resolve_link(links: dict[str, str], path: str) -> str | None:
    """Where ``path`` leads inside the tree, following the tree's own links as the kernel would;
    None if it leaves the tree (or loops)."""
    stack: list[str] = []
    pending = path.split("/")
    hops = 0
    while pending:
        part = pending.pop(0)
        if part in ("", "."):
            continue
        if part == "..":
            if not stack:
                return None
            stack.pop()
            continue
        stack.append(part)
        joined = "/".join(stack)
        if joined in links:
            hops += 1
            target = links[joined]
            if hops > MAX_LINK_HOPS or target.startswith("/"):
                return None
            stack.pop()
            pending = target.split("/") + pending
    return "/".join(stack)


class TreeBuilder:
    """Checks entries one by one against the limits and collects the accepted ones."""

    def __init__(self, limits: ImportLimits, *, source: str, deadline: float | None = None):
        self.limits = limits
        self.tree = ImportedTree(source=source)
        self.deadline = deadline or time.monotonic() + limits.timeout_seconds
        self.declared_total = 0
        self.entries = 0
        self.directories: set[str] = set()
        self.admitted: set[str] = set()

    # -- checks before any content is read ------------------------------------------------

    def check_time(self) -> None:
        if time.monotonic() > self.deadline:
            raise ImportRefused(
                f"The import took longer than {self.limits.timeout_seconds:g} seconds.",
                code="timeout",
            )

    def admit(
        self, raw_path: str, *, kind: str, size: int = 0, mode: int | None = None
    ) -> str | None:
        """Check one entry before its content is read; its normalised path, or None when the
        entry is skipped (a directory, git metadata). ``kind`` is file, dir, symlink,
        hardlink or device (anything else); ``size`` the size it declares."""
        self.check_time()
        path = normalise(raw_path)
        if kind == "hardlink":
            raise ImportRefused(f"{path or raw_path}: a hard link.", code="hard_link")
        if kind == "device":
            raise ImportRefused(
                f"{path or raw_path}: a device, pipe or socket, not a file.", code="special_file"
            )
        if kind not in ("file", "dir", "symlink"):
            raise ImportRefused(
                f"{path or raw_path}: an unknown kind of entry.", code="special_file"
            )
        if not path:
            return None
        if _is_git_metadata(path):
            self.tree.skipped.append(Skipped(path, "git metadata (.git) is never imported"))
            return None
        if kind == "dir":
            self.directories.add(path)
            return None
        self.entries += 1
        if self.entries > self.limits.max_files:
            raise ImportRefused(f"More than {self.limits.max_files} files.", code="too_many_files")
        if size > self.limits.max_file_bytes:
            raise ImportRefused(
                f"{path}: {size} bytes, larger than the {self.limits.max_file_bytes} bytes a "
                "file may have.",
                code="file_too_large",
            )
        self.declared_total += size
        if self.declared_total > self.limits.max_total_bytes:
            raise ImportRefused(
                f"More than {self.limits.max_total_bytes} bytes in all.", code="tree_too_large"
            )
        if path in self.admitted:
            raise ImportRefused(f"{path}: appears twice.", code="duplicate_entry")
        self.admitted.add(path)
        return path

    # -- accepting content -----------------------------------------------------------------

    def add_file(self, path: str, data: bytes, *, executable: bool = False) -> None:
        """Keep a file admitted by ``admit`` (its real size checked again)."""
        if len(data) > self.limits.max_file_bytes:
            raise ImportRefused(
                f"{path}: larger than the {self.limits.max_file_bytes} bytes a file may have.",
                code="file_too_large",
            )
        if self.tree.total_bytes + len(data) > self.limits.max_total_bytes:
            raise ImportRefused(
                f"More than {self.limits.max_total_bytes} bytes in all.", code="tree_too_large"
            )
        self.tree.files[path] = data
        if executable:
            self.tree.executable.add(path)
        if is_binary(data):
            self.tree.binary.add(path)

    def add_symlink(self, path: str, target: str) -> None:
        """Keep a symbolic link admitted by ``admit``; an absolute target is refused here, the
        rest once the whole tree is known (``finish``)."""
        if not target or target.startswith("/") or "\0" in target:
            raise ImportRefused(
                f"{path}: a symbolic link that leaves the tree ({target[:200]}).",
                code="link_outside",
            )
        self.tree.symlinks[path] = target

    def skip(self, path: str, reason: str) -> None:
        self.tree.skipped.append(Skipped(path, reason))

    def finish(self) -> ImportedTree:
        """Check what needs the whole tree (links, entries below links, a file where a
        directory is) and hand the tree over."""
        links = self.tree.symlinks
        for path, target in links.items():
            parent = path.rsplit("/", 1)[0] if "/" in path else ""
            joined = f"{parent}/{target}" if parent else target
            if resolve_link(links, joined) is None:
                raise ImportRefused(
                    f"{path}: a symbolic link that leaves the tree ({target[:200]}).",
                    code="link_outside",
                )
        every = list(self.tree.files) + list(links)
        for path in every:
            parts = path.split("/")
            for depth in range(1, len(parts)):
                prefix = "/".join(parts[:depth])
                if prefix in links:
                    raise ImportRefused(
                        f"{path}: below a symbolic link ({prefix}).", code="path_through_link"
                    )
                if prefix in self.tree.files:
                    raise ImportRefused(
                        f"{path}: below {prefix}, which is a file.", code="duplicate_entry"
                    )
        for directory in self.directories:
            if directory in self.tree.files or directory in links:
                raise ImportRefused(
                    f"{directory}: both a file and a directory.", code="duplicate_entry"
                )
        return self.tree


def kind_of_mode(mode: int) -> str:
    """The entry kind ``TreeBuilder.admit`` expects, from a Unix mode."""
    if stat.S_ISREG(mode):
        return "file"
    if stat.S_ISDIR(mode):
        return "dir"
    if stat.S_ISLNK(mode):
        return "symlink"
    return "device"
