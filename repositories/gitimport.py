"""Import of a git repository at a branch, tag or commit, without a checkout.

The commit is fetched (shallow, no tags, no submodules) into a throwaway bare repository
(``gitcmd.GitSession``); its tree is listed (``git ls-tree -r -l``) and every entry checked —
path, kind, declared size, count, total — before a single blob is read
(``git cat-file --batch``). Nothing is ever checked out, so no file of the repository is
written anywhere; git's own object store lives in the session's temporary directory and goes
with it. Submodules are left out (and listed as skipped) unless asked for; asked for, each
submodule's URL passes the same remote checks as the repository's own (a local path or
``file://`` only with ``REPOSITORY_ALLOW_LOCAL``), and its files count against the same
limits.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

from django.conf import settings

from common.outbound import OutboundRefused, check_url, resolve_checked

from .errors import GitFailed, ImportRefused
from .gitcmd import GitCredentials, GitSession, SourcePolicy
from .tree import ImportedTree, ImportLimits, TreeBuilder, normalise

FULL_SHA = re.compile(r"^[0-9a-f]{40}([0-9a-f]{24})?$")
REF_CHARS = re.compile(r"^[A-Za-z0-9._/+-]+$")
MAX_SUBMODULE_NESTING = 3
MAX_LINK_TARGET = 4096


@dataclass(frozen=True)
class TreeEntry:
    mode: str
    kind: str  # blob or commit
    sha: str
    size: int
    path: str


def safe_ref_name(name: str, *, max_length: int) -> bool:
    """Whether git can be given ``name`` as a ref without reading it as an option, a range or
    a path out of ``refs/`` (a stricter subset of ``git check-ref-format``)."""
    return not (
        not name
        or len(name) > max_length
        or name.startswith(("-", "/"))
        or name.endswith(("/", ".", ".lock"))
        or not REF_CHARS.match(name)
        or ".." in name
        or any(not part or part.startswith(".") for part in name.split("/"))
    )


def check_ref(ref: str) -> str:
    """A branch, tag or full commit name git can be given safely; ``ImportRefused`` if not."""
    ref = ref.strip()
    if FULL_SHA.match(ref.lower()):
        return ref.lower()
    if not safe_ref_name(ref, max_length=255):
        raise ImportRefused(
            f"{ref[:100]!r} is not a branch, a tag or a full commit id.", code="bad_ref"
        )
    return ref


MAX_URL_CHARS = 2000


def check_import_url(url: str, *, sources: SourcePolicy | None = None) -> str:
    """``url`` stripped, if git may be asked to fetch it; ``OutboundRefused`` (a plain 400)
    otherwise.

    The checks the fetch makes again (``GitSession.prepare_remote``), made when the import is
    asked for: characters git cannot take safely, ``file://`` only with local sources
    allowed, a scheme of the policy's or ``ssh``, no credentials in the URL, the host on the
    allow-list, and an address written in the URL judged now (a host name is resolved and
    judged only when git connects).
    """
    sources = sources or SourcePolicy.from_settings()
    url = url.strip()
    if not url or len(url) > MAX_URL_CHARS:
        raise OutboundRefused(f"Give the repository's URL in at most {MAX_URL_CHARS} characters.")
    if any(char in url for char in '"\\\n\r\t ') or url.startswith("-"):
        raise OutboundRefused("That remote address has characters git cannot take safely.")
    scheme = urlsplit(url).scheme.lower()
    if scheme == "file":
        if not sources.allow_local_paths:
            raise OutboundRefused(
                "file:// remotes are not allowed (REPOSITORY_ALLOW_LOCAL is off)."
            )
        return url
    if not scheme:
        raise OutboundRefused(
            "Give the remote as a URL (https://… or ssh://…), not a path or host:path."
        )
    target = check_url(url, sources.network, schemes=set(sources.network.schemes) | {"ssh"})
    if target.literal is not None:
        resolve_checked(target, sources.network)
    return url


def import_git(
    url: str,
    *,
    ref: str | None = None,
    depth: int | None = None,
    submodules: bool = False,
    credentials: GitCredentials | None = None,
    limits: ImportLimits | None = None,
    sources: SourcePolicy | None = None,
) -> ImportedTree:
    """Fetch ``url`` at ``ref`` (a branch, a tag or a full commit id; default: the remote's
    HEAD) and read its tree, within ``limits``.

    ``depth`` (default 1) may not exceed ``REPOSITORY_IMPORT_MAX_DEPTH``. Raises
    ``ImportRefused`` (a rule broken; nothing kept), ``OutboundRefused`` (a remote not
    allowed) or ``GitFailed`` (the remote could not give the commit).
    """
    limits = limits or ImportLimits.from_settings()
    sources = sources or SourcePolicy.from_settings()
    depth = 1 if depth is None else depth
    if not 1 <= depth <= limits.max_depth:
        raise ImportRefused(
            f"A clone depth of {depth} is not allowed (at most {limits.max_depth}).",
            code="depth_too_large",
        )
    wanted = check_ref(ref) if ref else "HEAD"
    deadline = time.monotonic() + limits.timeout_seconds
    builder = TreeBuilder(limits, source="git", deadline=deadline)
    session = GitSession(
        sources=sources,
        deadline=deadline,
        timeout_seconds=limits.timeout_seconds,
        max_fetch_bytes=limits.max_fetch_bytes,
        credentials=credentials or GitCredentials(),
        known_hosts=settings.REPOSITORY_SSH_KNOWN_HOSTS,
    )
    with session:
        commit = fetch_commit(session, url, wanted, depth)
        _read_commit(session, builder, url, commit, prefix="", submodules=submodules, nesting=0)
    tree = builder.finish()
    tree.commit, tree.ref, tree.url = commit, ref, url
    return tree


def fetch_commit(session: GitSession, url: str, ref: str, depth: int) -> str:
    """Fetch ``ref`` of ``url`` into the session; the commit's full id."""
    session.run(
        "fetch",
        "--quiet",
        "--no-tags",
        "--no-recurse-submodules",
        f"--depth={depth}",
        "--",
        url,
        ref,
        remote=url,
        watch_size=True,
    )
    out = session.run("rev-parse", "--verify", "--end-of-options", "FETCH_HEAD^{commit}")
    return out.decode().strip()


def _list_tree(session: GitSession, commit: str) -> list[TreeEntry]:
    raw = session.run("ls-tree", "-r", "-l", "-z", "--full-tree", commit)
    entries = []
    for record in raw.split(b"\0"):
        if not record:
            continue
        meta, _, path = record.partition(b"\t")
        mode, kind, sha, size = meta.decode().split(maxsplit=3)
        try:
            name = path.decode("utf-8")
        except UnicodeDecodeError:
            name = path.decode("utf-8", "replace")
            entries.append(TreeEntry(mode, "undecodable", sha, 0, name))
            continue
        entries.append(TreeEntry(mode, kind, sha, int(size) if size.strip() != "-" else 0, name))
    return entries


def _read_commit(
    session: GitSession,
    builder: TreeBuilder,
    url: str,
    commit: str,
    *,
    prefix: str,
    submodules: bool,
    nesting: int,
) -> None:
    entries = _list_tree(session, commit)
    wanted: list[tuple[TreeEntry, str, str]] = []
    gitlinks: list[tuple[TreeEntry, str]] = []
    # First pass: every entry checked from the listing alone; no content read yet.
    for entry in entries:
        full = f"{prefix}{entry.path}"
        if entry.kind == "undecodable":
            builder.skip(full, "the name is not valid UTF-8")
            continue
        if entry.mode == "160000":
            builder.admit(full, kind="dir")
            gitlinks.append((entry, normalise(full)))
            continue
        if entry.mode in ("100644", "100755", "100664"):
            kind = "file"
        elif entry.mode == "120000":
            kind = "symlink"
        else:
            kind = "device"
        path = builder.admit(full, kind=kind, size=entry.size if kind == "file" else 0)
        if path is None:
            continue
        if kind == "symlink" and entry.size > MAX_LINK_TARGET:
            raise ImportRefused(f"{path}: a symbolic link with a huge target.", code="link_outside")
        wanted.append((entry, path, kind))
    # Second pass: the admitted blobs, read in one cat-file process.
    blobs = _read_blobs(session, [entry.sha for entry, _, _ in wanted])
    for entry, path, kind in wanted:
        data = blobs[entry.sha]
        if kind == "symlink":
            builder.add_symlink(path, data.decode("utf-8", "replace"))
        else:
            builder.add_file(path, data, executable=entry.mode == "100755")
    if not gitlinks:
        return
    if not submodules:
        for _entry, path in gitlinks:
            builder.skip(path, "a submodule (not fetched: submodules were not asked for)")
        return
    if nesting >= MAX_SUBMODULE_NESTING:
        raise ImportRefused(
            f"Submodules nested more than {MAX_SUBMODULE_NESTING} deep.", code="submodule_refused"
        )
    urls = _submodule_urls(session, commit)
    for entry, path in gitlinks:
        relative = path[len(prefix) :]
        raw = urls.get(relative)
        if raw is None:
            raise ImportRefused(
                f"{path}: a submodule without a URL in .gitmodules.", code="submodule_refused"
            )
        sub_url = submodule_url(url, raw, path)
        try:
            session.prepare_remote(sub_url)
        except OutboundRefused as exc:
            raise ImportRefused(
                f"{path}: the submodule's URL is refused: {exc.detail}", code="submodule_refused"
            ) from exc
        fetch_commit(session, sub_url, entry.sha, 1)
        _read_commit(
            session,
            builder,
            sub_url,
            entry.sha,
            prefix=f"{path}/",
            submodules=True,
            nesting=nesting + 1,
        )


def _read_blobs(session: GitSession, shas: list[str]) -> dict[str, bytes]:
    if not shas:
        return {}
    unique = list(dict.fromkeys(shas))
    out = session.run("cat-file", "--batch", input=("\n".join(unique) + "\n").encode())
    blobs: dict[str, bytes] = {}
    at = 0
    for sha in unique:
        end = out.index(b"\n", at)
        header = out[at:end].decode().split()
        if len(header) != 3 or header[1] != "blob":
            raise GitFailed("The repository's objects are damaged.", code="git_failed")
        size = int(header[2])
        blobs[sha] = out[end + 1 : end + 1 + size]
        at = end + 1 + size + 1
    return blobs


def _submodule_urls(session: GitSession, commit: str) -> dict[str, str]:
    """Submodule path -> URL, from the commit's ``.gitmodules`` (never from a checkout)."""
    try:
        out = session.run(
            "config", "--blob", f"{commit}:.gitmodules", "--null", "--get-regexp",
            r"^submodule\..*\.(path|url)$",
        )  # fmt: skip
    except GitFailed:
        return {}
    values: dict[str, dict[str, str]] = {}
    for record in out.decode("utf-8", "replace").split("\0"):
        if not record:
            continue
        key, _, value = record.partition("\n")
        name, _, field = key[len("submodule.") :].rpartition(".")
        values.setdefault(name, {})[field] = value
    return {
        entry["path"]: entry["url"]
        for entry in values.values()
        if "path" in entry and "url" in entry
    }


def submodule_url(parent: str, raw: str, path: str) -> str:
    """The URL a submodule names, resolved as git does (``./`` and ``../`` against the
    parent's URL); a bare path or ``host:path`` is refused (it names this machine or a host
    git would reach without our checks)."""
    raw = raw.strip()
    if raw.startswith(("./", "../")):
        parts = urlsplit(parent)
        base = parts.path.rstrip("/").split("/")
        for piece in raw.split("/"):
            if piece in ("", "."):
                continue
            if piece == "..":
                if len(base) <= 1:
                    raise ImportRefused(
                        f"{path}: the submodule's URL leaves the parent's host.",
                        code="submodule_refused",
                    )
                base.pop()
            else:
                base.append(piece)
        return urlunsplit((parts.scheme, parts.netloc, "/".join(base), "", ""))
    if raw.startswith("/") or re.match(r"^[A-Za-z]:[\\/]", raw):
        raise ImportRefused(
            f"{path}: the submodule points at a local path ({raw[:200]}).",
            code="submodule_refused",
        )
    if "://" not in raw:
        raise ImportRefused(
            f"{path}: the submodule's URL is not a URL ({raw[:200]}).", code="submodule_refused"
        )
    return raw
