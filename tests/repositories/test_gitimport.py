"""Git imports with real git: smart HTTP from ``git http-backend`` and ``file://``; local and
hostile sources refused with their reason, nothing written outside the temporary directory
(which is gone afterwards)."""

import os
import socket
import subprocess
from pathlib import Path

import pytest

from common.outbound import OutboundPolicy, OutboundRefused, networks, repository_policy
from repositories.errors import GitFailed, ImportRefused
from repositories.gitcmd import SourcePolicy
from repositories.gitimport import check_ref, import_git, submodule_url
from repositories.tree import ImportLimits
from tests.git_server import GitHttpServer, git, make_bare, make_repository
from tests.stub_http import RecordingServer

FILES: dict[str, str | bytes] = {
    "app.py": "print('hello')\n",
    "pkg/util.py": "X = 1\n",
    "logo.bin": b"\x00\x01\x02",
}


@pytest.fixture
def served(tmp_path):
    """A repository (two commits on main, a tag) served over smart HTTP."""
    source = tmp_path / "work"
    first = make_repository(source, FILES)
    git("tag", "v1", cwd=source)
    (source / "app.py").write_text("print('second')\n")
    git("commit", "-qam", "second", cwd=source)
    make_bare(tmp_path / "srv", "repo.git", source)
    with GitHttpServer(tmp_path / "srv") as server:
        server.first = first
        server.second = git("rev-parse", "HEAD", cwd=source)
        server.repo_url = f"{server.url}/repo.git"
        yield server


def local_sources(*, paths: bool = True) -> SourcePolicy:
    network = repository_policy(
        allow_local=False, allowed_hosts=("*",), allowed_networks=networks(["127.0.0.1"]),
        schemes=frozenset({"http", "https"}),
    )  # fmt: skip
    return SourcePolicy(network=network, allow_local_paths=paths)


def test_a_branch_is_imported_over_smart_http(sealed, served, local_git):
    tree = import_git(served.repo_url, ref="main")
    assert tree.files == {
        "app.py": b"print('second')\n",
        "pkg/util.py": b"X = 1\n",
        "logo.bin": b"\x00\x01\x02",
    }
    assert (tree.commit, tree.ref, tree.source) == (served.second, "main", "git")
    assert tree.binary == {"logo.bin"}
    assert list(sealed.tmp.iterdir()) == []


def test_a_tag_and_a_commit_are_imported(sealed, served, local_git):
    assert import_git(served.repo_url, ref="v1").commit == served.first
    at_commit = import_git(served.repo_url, ref=served.first)
    assert (at_commit.commit, at_commit.files["app.py"]) == (served.first, b"print('hello')\n")


def test_without_a_ref_the_remotes_head_is_imported(sealed, served, local_git):
    assert import_git(served.repo_url).commit == served.second


def test_a_file_remote_is_imported_when_local_sources_are_allowed(sealed, served, local_git):
    tree = import_git(f"file://{served.root / 'repo.git'}", ref="main")
    assert tree.commit == served.second


def test_a_missing_ref_is_a_plain_error(sealed, served, local_git):
    with pytest.raises(GitFailed) as failed:
        import_git(served.repo_url, ref="no-such-branch")
    assert (failed.value.code, failed.value.detail) == (
        "git_ref_not_found",
        "The remote has no such branch, tag or commit.",
    )
    assert list(sealed.tmp.iterdir()) == []


@pytest.mark.parametrize("ref", ["-uhack", "a..b", "main:evil", "refs/heads/", "x y", "a/.b"])
def test_refs_that_could_be_options_or_refspecs_are_refused(ref):
    with pytest.raises(ImportRefused) as refused:
        check_ref(ref)
    assert refused.value.code == "bad_ref"


# --- local and hostile sources ------------------------------------------------------------


LOOPBACK = "127.0.0.1 is a loopback address, which is not allowed."


@pytest.mark.parametrize(
    ("url", "detail"),
    [
        ("https://127.0.0.1:{port}/repo.git", LOOPBACK),
        (
            "https://169.254.169.254/latest/meta-data",
            "169.254.169.254 is a link-local address, which is not allowed.",
        ),
        ("https://10.1.2.3/repo.git", "10.1.2.3 is a private address, which is not allowed."),
        ("ssh://git@127.0.0.1:{port}/repo.git", LOOPBACK),
        (
            "https://[::ffff:127.0.0.1]:{port}/repo.git",
            "::ffff:7f00:1 is an IPv6 address carrying a loopback address, which is not allowed.",
        ),
    ],
)
def test_a_clone_from_a_local_address_is_refused_when_not_allowed(
    sealed, served, settings, url, detail
):
    settings.REPOSITORY_ALLOW_LOCAL = False
    settings.REPOSITORY_ALLOWED_HOSTS = ["*"]
    port = served.httpd.server_address[1]
    before = sealed.snapshot()
    with pytest.raises(OutboundRefused) as refused:
        import_git(url.format(port=port))
    assert refused.value.detail == detail
    assert served.requests == []
    assert sealed.snapshot() == before


def test_a_host_name_resolving_to_the_metadata_service_is_refused(sealed):
    def dns(host, port):
        return ["169.254.169.254"]

    sources = SourcePolicy(
        network=OutboundPolicy(allowed_hosts=("*",), resolver=dns), allow_local_paths=False
    )
    with pytest.raises(OutboundRefused) as refused:
        import_git("https://metadata.example/repo.git", sources=sources)
    assert refused.value.detail == (
        "metadata.example resolves to a link-local address, which is not allowed."
    )


def test_a_file_remote_is_refused_when_local_sources_are_not_allowed(sealed, served, settings):
    settings.REPOSITORY_ALLOW_LOCAL = False
    with pytest.raises(OutboundRefused) as refused:
        import_git(f"file://{served.root / 'repo.git'}")
    assert (
        refused.value.detail == "file:// remotes are not allowed (REPOSITORY_ALLOW_LOCAL is off)."
    )


@pytest.mark.parametrize(
    "url",
    [
        "/srv/repo.git",
        "git@127.0.0.1:repo.git",
        "ext::sh -c touch% /tmp/x",
        "--upload-pack=touch /tmp/x",
    ],
)
def test_paths_scp_syntax_and_git_transports_are_refused(sealed, local_git, url):
    with pytest.raises(OutboundRefused):
        import_git(url)


def test_git_ignores_the_environment_it_was_started_with(
    sealed, served, local_git, monkeypatch, tmp_path
):
    # A proxy, a config redirecting the remote elsewhere, and an ssh command: all ignored.
    make_repository(tmp_path / "decoy-work", {"decoy": "x"})
    decoy = make_bare(tmp_path / "decoy", "decoy.git", tmp_path / "decoy-work")
    hostile = tmp_path / "hostile.gitconfig"
    hostile.write_text(f'[url "file://{decoy}"]\n\tinsteadOf = {served.repo_url}\n')
    with RecordingServer() as proxy:
        for name in ("http_proxy", "HTTP_PROXY", "https_proxy", "ALL_PROXY"):
            monkeypatch.setenv(name, proxy.url)
        monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(hostile))
        monkeypatch.setenv(
            "GIT_CONFIG_PARAMETERS", f"'url.file://{decoy}.insteadof'='{served.repo_url}'"
        )
        monkeypatch.setenv("GIT_SSH_COMMAND", "touch /tmp/aiflow-should-not-run")
        tree = import_git(served.repo_url, ref="main")
        assert "decoy" not in tree.files
        assert tree.commit == served.second
        assert proxy.requests == []


# --- limits -------------------------------------------------------------------------------


def limits(**values) -> ImportLimits:
    base = {
        "max_total_bytes": 10_000_000,
        "max_files": 100,
        "max_file_bytes": 1_000_000,
        "max_depth": 5,
        "max_fetch_bytes": 50_000_000,
        "timeout_seconds": 60,
    }
    return ImportLimits(**{**base, **values})


def test_a_file_over_the_size_limit_is_refused_before_it_is_read(sealed, tmp_path, local_git):
    source = tmp_path / "big"
    make_repository(source, {"big.bin": os.urandom(300_000), "ok.txt": "ok"})
    with pytest.raises(ImportRefused) as refused:
        import_git(f"file://{source}", limits=limits(max_file_bytes=100_000))
    assert (refused.value.code, refused.value.detail) == (
        "file_too_large",
        "big.bin: 300000 bytes, larger than the 100000 bytes a file may have.",
    )
    assert list(sealed.tmp.iterdir()) == []


def test_too_many_files_are_refused(sealed, tmp_path, local_git):
    source = tmp_path / "many"
    make_repository(source, {f"f{index}.txt": str(index) for index in range(30)})
    with pytest.raises(ImportRefused) as refused:
        import_git(f"file://{source}", limits=limits(max_files=20))
    assert (refused.value.code, refused.value.detail) == ("too_many_files", "More than 20 files.")


def test_a_fetch_larger_than_its_bound_is_stopped(sealed, tmp_path, local_git):
    source = tmp_path / "heavy"
    make_repository(source, {"noise.bin": os.urandom(2_000_000)})
    with pytest.raises(GitFailed) as failed:
        import_git(
            f"file://{source}", limits=limits(max_fetch_bytes=500_000, max_file_bytes=5_000_000)
        )
    assert (failed.value.code, failed.value.detail) == (
        "fetch_too_large",
        "The remote sent more than 500000 bytes.",
    )
    assert list(sealed.tmp.iterdir()) == []


def test_a_depth_beyond_the_setting_is_refused(sealed, served, local_git):
    with pytest.raises(ImportRefused) as refused:
        import_git(served.repo_url, depth=50)
    assert (refused.value.code, refused.value.detail) == (
        "depth_too_large",
        "A clone depth of 50 is not allowed (at most 1).",
    )


def test_a_remote_that_never_answers_ends_in_a_timeout(sealed, local_git):
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    try:
        url = f"http://127.0.0.1:{listener.getsockname()[1]}/repo.git"
        with pytest.raises(GitFailed) as failed:
            import_git(url, limits=limits(timeout_seconds=2))
        assert (failed.value.code, failed.value.detail) == (
            "timeout",
            "git took longer than 2 seconds.",
        )
    finally:
        listener.close()
    assert list(sealed.tmp.iterdir()) == []


def test_a_symbolic_link_out_of_the_repository_is_refused(sealed, tmp_path, local_git):
    source = tmp_path / "linked"
    make_repository(source, {"a.txt": "a"})
    os.symlink("../../../../etc/passwd", source / "passwd")
    git("add", "-A", cwd=source)
    git("commit", "-qm", "link", cwd=source)
    with pytest.raises(ImportRefused) as refused:
        import_git(f"file://{source}")
    assert (refused.value.code, refused.value.detail) == (
        "link_outside",
        "passwd: a symbolic link that leaves the tree (../../../../etc/passwd).",
    )


# --- submodules ---------------------------------------------------------------------------


def _with_submodule(tmp_path: Path, url: str) -> Path:
    """A repository whose submodule ``lib`` has ``url`` (the submodule's commit is real)."""
    library = tmp_path / "library"
    make_repository(library, {"secret.txt": "from the library\n"})
    parent = tmp_path / "parent"
    make_repository(parent, {"main.py": "import lib\n"})
    git(
        "-c",
        "protocol.file.allow=always",
        "submodule",
        "add",
        "-q",
        str(library),
        "lib",
        cwd=parent,
    )
    git("config", "-f", ".gitmodules", "submodule.lib.url", url, cwd=parent)
    git("add", "-A", cwd=parent)
    git("commit", "-qm", "submodule", cwd=parent)
    return parent


def test_submodules_are_skipped_unless_asked_for(sealed, tmp_path, local_git):
    parent = _with_submodule(tmp_path, str(tmp_path / "library"))
    tree = import_git(f"file://{parent}")
    assert sorted(tree.files) == [".gitmodules", "main.py"]
    assert [(s.path, s.reason) for s in tree.skipped] == [
        ("lib", "a submodule (not fetched: submodules were not asked for)")
    ]


@pytest.mark.parametrize(
    ("form", "detail"),
    [
        ("path", "lib: the submodule points at a local path ({library})."),
        (
            "file_url",
            "lib: the submodule's URL is refused: "
            "file:// remotes are not allowed (REPOSITORY_ALLOW_LOCAL is off).",
        ),
    ],
)
def test_a_submodule_pointing_at_a_local_path_is_refused(sealed, tmp_path, form, detail):
    library = tmp_path / "library"
    url = str(library) if form == "path" else f"file://{library}"
    parent = _with_submodule(tmp_path, url)
    make_bare(tmp_path / "srv", "parent.git", parent)
    with GitHttpServer(tmp_path / "srv") as server:
        before = sealed.snapshot()
        with pytest.raises(ImportRefused) as refused:
            import_git(
                f"{server.url}/parent.git", submodules=True, sources=local_sources(paths=False)
            )
        assert (refused.value.code, refused.value.detail) == (
            "submodule_refused",
            detail.format(library=library),
        )
        assert sealed.snapshot() == before


def test_a_submodule_on_the_same_server_is_imported_when_asked_for(sealed, tmp_path):
    parent = _with_submodule(tmp_path, "../library.git")
    make_bare(tmp_path / "srv", "parent.git", parent)
    make_bare(tmp_path / "srv", "library.git", tmp_path / "library")
    with GitHttpServer(tmp_path / "srv") as server:
        tree = import_git(
            f"{server.url}/parent.git", submodules=True, sources=local_sources(paths=False)
        )
    assert tree.files["lib/secret.txt"] == b"from the library\n"
    assert tree.skipped == []


def test_relative_submodule_urls_resolve_against_the_parent():
    assert submodule_url("https://forge.example/acme/app.git", "../lib.git", "lib") == (
        "https://forge.example/acme/lib.git"
    )
    with pytest.raises(ImportRefused) as refused:
        submodule_url("https://forge.example/app.git", "../../../x.git", "lib")
    assert refused.value.detail == "lib: the submodule's URL leaves the parent's host."
    with pytest.raises(ImportRefused) as refused:
        submodule_url("https://forge.example/app.git", "/srv/secret", "lib")
    assert refused.value.detail == "lib: the submodule points at a local path (/srv/secret)."


def test_the_git_session_directory_is_private_while_it_exists(
    sealed, served, local_git, monkeypatch
):
    seen_modes = []
    real_popen = subprocess.Popen

    def watching(*args, **kwargs):
        cwd = kwargs.get("cwd")
        if cwd and str(cwd).startswith(str(sealed.tmp)):
            seen_modes.append(
                (
                    Path(cwd).stat().st_mode & 0o777,
                    (Path(cwd) / "home" / "gitconfig").stat().st_mode & 0o777,
                )
            )
        return real_popen(*args, **kwargs)

    monkeypatch.setattr(subprocess, "Popen", watching)
    import_git(served.repo_url)
    assert seen_modes and set(seen_modes) == {(0o700, 0o600)}


def test_ssh_goes_to_the_pinned_address_with_the_key_in_a_private_file(sealed, monkeypatch):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519

    from common.secrets import Secret
    from repositories.gitcmd import GitCredentials

    key = ed25519.Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.OpenSSH,
        serialization.NoEncryption(),
    )
    accepted = []
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    listener.settimeout(20)

    def accept_one():
        connection, _ = listener.accept()
        accepted.append(connection.recv(64))  # the client's SSH banner
        connection.close()

    import threading

    thread = threading.Thread(target=accept_one, daemon=True)
    thread.start()
    key_files = []
    real_popen = subprocess.Popen

    def watching(args, *rest, **kwargs):
        command = (kwargs.get("env") or {}).get("GIT_SSH_COMMAND", "")
        if command:
            key_file = Path(command.split(" -i ")[1].split()[0])
            key_files.append((key_file.stat().st_mode & 0o777, key_file.read_bytes()))
        return real_popen(args, *rest, **kwargs)

    monkeypatch.setattr(subprocess, "Popen", watching)
    sources = SourcePolicy(
        network=OutboundPolicy(
            allowed_hosts=("*",),
            allowed_networks=networks(["127.0.0.1"]),
            resolver=lambda host, port: ["127.0.0.1"],
        ),
        allow_local_paths=False,
    )
    port = listener.getsockname()[1]
    try:
        with pytest.raises(GitFailed):
            import_git(
                f"ssh://git@forge.example:{port}/acme/app.git",
                sources=sources,
                credentials=GitCredentials(ssh_private_key=Secret(key.decode())),
            )
        thread.join(timeout=20)
    finally:
        listener.close()
    # forge.example resolves nowhere on this machine: ssh reached the checked address.
    assert accepted and accepted[0].startswith(b"SSH-2.0-")
    assert key_files == [(0o600, key)]
    assert list(sealed.tmp.iterdir()) == []
