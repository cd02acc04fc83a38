"""Push one commit per delivery to a branch, built from a tree of changes, with real git.

The commit sits on top of the branch's current head when the branch exists (so a second
delivery adds a commit to the same branch), else on top of the commit the import recorded,
else — an archive import has no history — on top of a root commit holding the imported tree.
It is built with ``git fast-import`` in a throwaway bare repository (``gitcmd.GitSession``:
clean environment, pinned remote, the token only in a 0600 config file scoped to the remote's
URL), authored by the configured bot with the user as ``Co-authored-by``, and pushed without
force: if the branch moved meanwhile the push is refused and nothing is overwritten.

A delivery key (the run's idempotency key) is written as a trailer; a branch whose head
already carries it is left alone, so a retried delivery never stacks a second commit.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

from django.conf import settings

from ..errors import DeliveryRefused
from ..gitcmd import GitCredentials, GitSession, SourcePolicy
from ..gitimport import fetch_commit, safe_ref_name
from ..tree import ImportedTree, ImportLimits

DELIVERY_TRAILER = "Aiflow-Delivery"
ROOT_MESSAGE = "Imported tree\n\nThe tree as it was imported, before any change."


@dataclass(frozen=True)
class Person:
    """Someone named in a commit (author or co-author)."""

    name: str
    email: str

    def line(self) -> str:
        if any(char in self.name + self.email for char in "<>\n\r\0") or "@" not in self.email:
            raise DeliveryRefused(
                "A commit author needs a plain name and an email.", code="bad_author"
            )
        return f"{self.name} <{self.email}>"


@dataclass(frozen=True)
class TreeChanges:
    """What a delivery changes: files added or changed (whole content), files deleted."""

    files: Mapping[str, bytes] = field(default_factory=dict)
    deleted: frozenset[str] = frozenset()
    executable: frozenset[str] = frozenset()

    @classmethod
    def between(cls, before: Mapping[str, bytes], after: Mapping[str, bytes]) -> TreeChanges:
        """The changes that turn tree ``before`` into tree ``after``."""
        changed = {path: data for path, data in after.items() if before.get(path) != data}
        return cls(files=changed, deleted=frozenset(set(before) - set(after)))

    def __bool__(self) -> bool:
        return bool(self.files or self.deleted)


@dataclass(frozen=True)
class PushResult:
    """What ``push_branch`` did."""

    branch: str
    commit: str  # the branch's head after the delivery
    parent: str | None
    root_commit: str | None  # the imported tree's root commit, when one was made
    created_branch: bool
    pushed: bool  # False when the branch already held this delivery (nothing sent)


def check_branch(branch: str) -> str:
    """A branch name git takes safely; ``DeliveryRefused`` (400) if not."""
    if branch == "HEAD" or not safe_ref_name(branch, max_length=200):
        raise DeliveryRefused(f"{branch[:100]!r} is not a usable branch name.", code="bad_branch")
    return branch


def _quote(path: str) -> str:
    """A path in fast-import's C-style quotes."""
    escaped = path.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'


def _data(payload: bytes) -> bytes:
    return b"data %d\n" % len(payload) + payload + b"\n"


def _message(message: str, co_author: Person | None, delivery_key: str | None) -> str:
    text = message.strip() or "Changes from aiflow"
    trailers = []
    if co_author is not None:
        trailers.append(f"Co-authored-by: {co_author.line()}")
    if delivery_key:
        if not re.match(r"^[A-Za-z0-9._:-]{1,200}$", delivery_key):
            raise DeliveryRefused("A delivery key of plain characters only.", code="bad_key")
        trailers.append(f"{DELIVERY_TRAILER}: {delivery_key}")
    return text + ("\n\n" + "\n".join(trailers) if trailers else "") + "\n"


def _commit_stream(
    *,
    ref: str,
    author: Person,
    message: str,
    parent: str | None,
    files: Mapping[str, bytes],
    modes: Mapping[str, str],
    deleted: frozenset[str] = frozenset(),
    links: Mapping[str, str] | None = None,
) -> bytes:
    stamp = f"{author.line()} {int(time.time())} +0000"
    out = [
        f"commit {ref}\n".encode(),
        f"author {stamp}\ncommitter {stamp}\n".encode(),
        _data(message.encode()),
    ]
    if parent:
        out.append(f"from {parent}\n".encode())
    for path in sorted(deleted):
        out.append(f"D {_quote(path)}\n".encode())
    for path, data in sorted(files.items()):
        out.append(f"M {modes.get(path, '100644')} inline {_quote(path)}\n".encode())
        out.append(_data(data))
    for path, target in sorted((links or {}).items()):
        out.append(f"M 120000 inline {_quote(path)}\n".encode())
        out.append(_data(target.encode()))
    out.append(b"\n")
    return b"".join(out)


def _modes(session: GitSession, commit: str, paths: set[str]) -> dict[str, str]:
    raw = session.run("ls-tree", "-r", "-z", "--full-tree", commit)
    modes = {}
    for record in raw.split(b"\0"):
        meta, _, path = record.partition(b"\t")
        name = path.decode("utf-8", "replace")
        if name in paths and meta:
            mode = meta.decode().split()[0]
            if mode in ("100644", "100755"):
                modes[name] = mode
    return modes


def _tree_of(session: GitSession, commit: str) -> str:
    return (
        session.run("rev-parse", "--verify", "--end-of-options", f"{commit}^{{tree}}")
        .decode()
        .strip()
    )


def push_branch(
    *,
    remote_url: str,
    branch: str,
    changes: TreeChanges,
    message: str,
    co_author: Person | None = None,
    credentials: GitCredentials | None = None,
    base_commit: str | None = None,
    base_tree: ImportedTree | None = None,
    delivery_key: str | None = None,
    sources: SourcePolicy | None = None,
    limits: ImportLimits | None = None,
) -> PushResult:
    """Push one commit carrying ``changes`` to ``branch`` of ``remote_url``.

    The parent is the branch's head if it exists, else ``base_commit`` (the commit the
    import recorded), else a root commit made from ``base_tree`` (an archive import), else
    nothing (a first commit). Raises ``OutboundRefused`` for a remote the policy does not
    allow, ``GitFailed`` when git cannot (``code`` ``branch_moved`` when the branch moved
    meanwhile), ``DeliveryRefused`` when there is nothing to deliver.
    """
    check_branch(branch)
    limits = limits or ImportLimits.from_settings()
    bot = Person(settings.REPOSITORY_BOT_NAME, settings.REPOSITORY_BOT_EMAIL)
    full_message = _message(message, co_author, delivery_key)
    deadline = time.monotonic() + limits.timeout_seconds
    session = GitSession(
        sources=sources or SourcePolicy.from_settings(),
        deadline=deadline,
        timeout_seconds=limits.timeout_seconds,
        max_fetch_bytes=limits.max_fetch_bytes,
        credentials=credentials or GitCredentials(),
        known_hosts=settings.REPOSITORY_SSH_KNOWN_HOSTS,
        author=(bot.name, bot.email),
    )
    with session:
        listed = session.run(
            "ls-remote", "--heads", "--", remote_url, f"refs/heads/{branch}", remote=remote_url
        )
        head = listed.split(b"\t", 1)[0].decode().strip() or None
        root_commit = None
        if head:
            parent: str | None = fetch_commit(session, remote_url, f"refs/heads/{branch}", 1)
            if delivery_key and _carries_key(session, head, delivery_key):
                return PushResult(branch, head, None, None, created_branch=False, pushed=False)
        elif base_commit:
            parent = fetch_commit(session, remote_url, base_commit, 1)
        elif base_tree is not None:
            root_stream = _commit_stream(
                ref="refs/heads/aiflow-root",
                author=bot,
                message=ROOT_MESSAGE,
                parent=None,
                files=base_tree.files,
                modes={path: "100755" for path in base_tree.executable},
                links=base_tree.symlinks,
            )
            session.run("fast-import", "--quiet", input=root_stream)
            parent = root_commit = _rev(session, "refs/heads/aiflow-root")
        else:
            parent = None
        modes = _modes(session, parent, set(changes.files)) if parent else {}
        modes.update({path: "100755" for path in changes.executable})
        stream = _commit_stream(
            ref="refs/heads/aiflow-delivery",
            author=bot,
            message=full_message,
            parent=parent,
            files=changes.files,
            modes=modes,
            deleted=changes.deleted,
        )
        session.run("fast-import", "--quiet", input=stream)
        commit = _rev(session, "refs/heads/aiflow-delivery")
        if (
            parent
            and _tree_of(session, commit) == _tree_of(session, parent)
            and root_commit is None
        ):
            if head:
                return PushResult(branch, head, None, None, created_branch=False, pushed=False)
            raise DeliveryRefused(
                "Nothing to deliver: the tree is the same as its base.", code="nothing_to_deliver"
            )
        session.run(
            "push",
            "--quiet",
            "--no-verify",
            "--",
            remote_url,
            f"{commit}:refs/heads/{branch}",
            remote=remote_url,
        )
    return PushResult(branch, commit, parent, root_commit, created_branch=head is None, pushed=True)


def _rev(session: GitSession, ref: str) -> str:
    return session.run("rev-parse", "--verify", "--end-of-options", ref).decode().strip()


def _carries_key(session: GitSession, commit: str, key: str) -> bool:
    body = session.run("log", "-1", "--format=%B", commit).decode("utf-8", "replace")
    return f"{DELIVERY_TRAILER}: {key}" in body.splitlines()
