"""Pushing a delivery with real git: to a bare repository behind ``git http-backend`` (which
checks a token) and to a ``file://`` remote; one commit per delivery, a second delivery on
top of the first, a root commit for an archive import, nothing overwritten."""

import base64
import subprocess

import pytest

from common.secrets import Secret
from repositories.delivery import Person, TreeChanges, push_branch
from repositories.errors import DeliveryRefused, GitFailed
from repositories.gitcmd import GitCredentials
from repositories.tree import ImportedTree
from tests.git_server import GitHttpServer, git, make_bare, make_repository

TOKEN = "ghp_s3cretTOKENvalue123"
USER = Person("Ada Lovelace", "ada@example.org")


def credentials_for(server: GitHttpServer) -> GitCredentials:
    raw = base64.b64encode(f"x-access-token:{TOKEN}".encode()).decode()
    return GitCredentials(
        http_header=Secret(f"Authorization: Basic {raw}"),
        header_origins=frozenset({("127.0.0.1", server.httpd.server_address[1])}),
    )


@pytest.fixture
def forge_repo(tmp_path):
    """A bare repository with one commit on main, served with a token; (server, base sha)."""
    base = make_repository(tmp_path / "work", {"app.py": "print('v1')\n", "run.sh": "#!/bin/sh\n"})
    git("update-index", "--chmod=+x", "run.sh", cwd=tmp_path / "work")
    git("commit", "-qm", "exec", cwd=tmp_path / "work")
    base = git("rev-parse", "HEAD", cwd=tmp_path / "work")
    make_bare(tmp_path / "srv", "repo.git", tmp_path / "work")
    with GitHttpServer(tmp_path / "srv", token=TOKEN) as server:
        server.bare = tmp_path / "srv" / "repo.git"
        server.base = base
        server.remote = f"{server.url}/repo.git"
        yield server


def show(bare, spec: str) -> str:
    return git("show", spec, cwd=bare)


def test_a_delivery_pushes_one_commit_on_the_imported_base(sealed, forge_repo, local_git):
    result = push_branch(
        remote_url=forge_repo.remote,
        branch="aiflow/run-7",
        changes=TreeChanges(files={"app.py": b"print('v2')\n", "new.txt": b"new\n"}),
        message="Say v2\n\nThe prompt and a summary.",
        co_author=USER,
        credentials=credentials_for(forge_repo),
        base_commit=forge_repo.base,
    )
    bare = forge_repo.bare
    assert (result.created_branch, result.pushed, result.parent) == (True, True, forge_repo.base)
    assert git("rev-parse", "refs/heads/aiflow/run-7", cwd=bare) == result.commit
    assert git("rev-parse", f"{result.commit}^", cwd=bare) == forge_repo.base
    assert show(bare, f"{result.commit}:app.py") == "print('v2')"
    assert show(bare, f"{result.commit}:new.txt") == "new"
    assert git("ls-tree", result.commit, "run.sh", cwd=bare).split()[0] == "100755"
    assert git("log", "-1", "--format=%an <%ae>|%cn|%B", result.commit, cwd=bare) == (
        "aiflow <aiflow@users.noreply.localhost>|aiflow|Say v2\n\nThe prompt and a summary.\n\n"
        "Co-authored-by: Ada Lovelace <ada@example.org>"
    )
    assert list(sealed.tmp.iterdir()) == []


def test_a_second_delivery_adds_a_commit_on_the_same_branch(sealed, forge_repo, local_git):
    common = {
        "remote_url": forge_repo.remote,
        "branch": "aiflow/run-7",
        "credentials": credentials_for(forge_repo),
        "base_commit": forge_repo.base,
    }
    first = push_branch(changes=TreeChanges(files={"app.py": b"v2\n"}), message="one", **common)
    second = push_branch(
        changes=TreeChanges(files={"app.py": b"v3\n"}, deleted=frozenset({"run.sh"})),
        message="two",
        **common,
    )
    bare = forge_repo.bare
    assert (second.parent, second.created_branch) == (first.commit, False)
    assert git("rev-list", "--count", f"{forge_repo.base}..aiflow/run-7", cwd=bare) == "2"
    assert git("ls-tree", "--name-only", "aiflow/run-7", cwd=bare).split() == ["app.py"]
    # A client with the token sees the branch at the second commit.
    encoded = base64.b64encode(f"x-access-token:{TOKEN}".encode()).decode()
    listed = subprocess.run(
        ["git", "-c", f"http.extraHeader=Authorization: Basic {encoded}", "ls-remote",
         forge_repo.remote, "refs/heads/aiflow/run-7"],
        capture_output=True,
        text=True,
        check=True,
        env={"PATH": "/usr/bin:/bin", "HOME": "/nonexistent", "GIT_TERMINAL_PROMPT": "0"},
    )  # fmt: skip
    assert listed.stdout.split() == [second.commit, "refs/heads/aiflow/run-7"]


def test_the_same_delivery_key_twice_leaves_one_commit(sealed, forge_repo, local_git):
    common = {
        "remote_url": forge_repo.remote,
        "branch": "aiflow/run-8",
        "credentials": credentials_for(forge_repo),
        "base_commit": forge_repo.base,
        "delivery_key": "run-8-delivery-1",
        "message": "one",
    }
    first = push_branch(changes=TreeChanges(files={"app.py": b"v2\n"}), **common)
    # A retry of the same delivery (its key) adds nothing, whatever it would change.
    again = push_branch(changes=TreeChanges(files={"app.py": b"v2 again\n"}), **common)
    assert (again.pushed, again.commit) == (False, first.commit)
    assert git("rev-parse", "aiflow/run-8", cwd=forge_repo.bare) == first.commit


def test_an_unchanged_tree_on_an_existing_branch_pushes_nothing(sealed, forge_repo, local_git):
    common = {
        "remote_url": forge_repo.remote,
        "branch": "aiflow/run-9",
        "credentials": credentials_for(forge_repo),
        "base_commit": forge_repo.base,
        "changes": TreeChanges(files={"app.py": b"v2\n"}),
        "message": "one",
    }
    first = push_branch(**common)
    again = push_branch(**common)
    assert (again.pushed, again.commit) == (False, first.commit)


def test_nothing_to_deliver_is_refused(sealed, forge_repo, local_git):
    with pytest.raises(DeliveryRefused) as refused:
        push_branch(
            remote_url=forge_repo.remote,
            branch="aiflow/empty",
            changes=TreeChanges(files={"app.py": b"print('v1')\n"}),
            message="nothing",
            credentials=credentials_for(forge_repo),
            base_commit=forge_repo.base,
        )
    assert refused.value.code == "nothing_to_deliver"


def test_an_archive_import_is_delivered_as_a_root_commit_then_the_change(
    sealed, tmp_path, local_git
):
    make_bare(tmp_path / "srv", "empty.git")
    remote = f"file://{tmp_path / 'srv' / 'empty.git'}"
    imported = ImportedTree(source="archive", files={"a.py": b"a\n", "b.bin": b"\x00"})
    imported.executable = {"a.py"}
    result = push_branch(
        remote_url=remote,
        branch="aiflow/run-1",
        changes=TreeChanges(files={"a.py": b"a2\n"}),
        message="change",
        base_tree=imported,
    )
    bare = tmp_path / "srv" / "empty.git"
    root = str(result.root_commit)
    assert git("rev-list", "--parents", "aiflow/run-1", cwd=bare).splitlines() == [
        f"{result.commit} {root}",
        root,
    ]
    assert show(bare, f"{root}:a.py") == "a"
    assert git("ls-tree", root, "a.py", cwd=bare).split()[0] == "100755"
    assert show(bare, f"{result.commit}:a.py") == "a2"
    assert git("log", "-1", "--format=%s", root, cwd=bare) == "Imported tree"


def test_a_branch_that_moved_meanwhile_is_not_overwritten(sealed, forge_repo, local_git):
    moved: dict[str, str] = {}

    def someone_pushes_first(request):
        # The branch moves just before the push reads where it is.
        pushing = "service=git-receive-pack" in request.query
        if request.path.endswith("/info/refs") and pushing and not moved:
            tree = git("rev-parse", f"{forge_repo.base}^{{tree}}", cwd=forge_repo.bare)
            commit = git(
                "commit-tree", tree, "-p", head["sha"], "-m", "theirs", cwd=forge_repo.bare
            )
            git("update-ref", "refs/heads/aiflow/run-3", commit, cwd=forge_repo.bare)
            moved["sha"] = commit

    common = {
        "remote_url": forge_repo.remote,
        "branch": "aiflow/run-3",
        "credentials": credentials_for(forge_repo),
        "base_commit": forge_repo.base,
    }
    head = {
        "sha": push_branch(changes=TreeChanges(files={"x": b"1"}), message="1", **common).commit
    }
    forge_repo.on_git = someone_pushes_first
    with pytest.raises(GitFailed) as failed:
        push_branch(changes=TreeChanges(files={"x": b"2"}), message="2", **common)
    assert failed.value.code == "branch_moved"
    assert git("rev-parse", "aiflow/run-3", cwd=forge_repo.bare) == moved["sha"]


def test_a_wrong_token_is_a_plain_refusal(sealed, forge_repo, local_git):
    raw = base64.b64encode(b"x-access-token:wrong").decode()
    credentials = GitCredentials(
        http_header=Secret(f"Authorization: Basic {raw}"),
        header_origins=frozenset({("127.0.0.1", forge_repo.httpd.server_address[1])}),
    )
    with pytest.raises(GitFailed) as failed:
        push_branch(
            remote_url=forge_repo.remote,
            branch="aiflow/x",
            changes=TreeChanges(files={"x": b"1"}),
            message="x",
            credentials=credentials,
            base_commit=forge_repo.base,
        )
    assert (failed.value.code, failed.value.detail) == (
        "git_auth",
        "The remote refused the credentials, or asked for some.",
    )


def test_the_token_goes_only_in_a_header_never_in_argv_env_or_url(
    sealed, forge_repo, local_git, monkeypatch
):
    launched = []
    real_popen = subprocess.Popen

    def recording(args, *rest, **kwargs):
        launched.append((list(args), dict(kwargs.get("env") or {})))
        return real_popen(args, *rest, **kwargs)

    monkeypatch.setattr(subprocess, "Popen", recording)
    push_branch(
        remote_url=forge_repo.remote,
        branch="aiflow/run-5",
        changes=TreeChanges(files={"x": b"1"}),
        message="x",
        credentials=credentials_for(forge_repo),
        base_commit=forge_repo.base,
    )
    encoded = base64.b64encode(f"x-access-token:{TOKEN}".encode()).decode()
    assert launched
    for args, env in launched:
        assert not any(TOKEN in arg or encoded in arg for arg in args)
        assert not any(TOKEN in value or encoded in value for value in env.values())
    assert {r.headers.get("authorization") for r in forge_repo.requests} == {f"Basic {encoded}"}
    assert not any(TOKEN in r.path + r.query for r in forge_repo.requests)


def test_the_token_is_not_sent_to_a_remote_on_another_host(sealed, forge_repo, tmp_path, local_git):
    make_bare(tmp_path / "mirror", "repo.git", tmp_path / "work")
    with GitHttpServer(tmp_path / "mirror") as mirror:
        push_branch(
            remote_url=f"{mirror.url}/repo.git",
            branch="aiflow/run-6",
            changes=TreeChanges(files={"x": b"1"}),
            message="x",
            credentials=credentials_for(forge_repo),  # the forge's origin, not the mirror's
            base_commit=forge_repo.base,
        )
        assert mirror.requests
        assert all("authorization" not in r.headers for r in mirror.requests)


@pytest.mark.parametrize("branch", ["-f", "a..b", "main.lock", "HEAD", "x y", "a//b", ""])
def test_unusable_branch_names_are_refused(sealed, forge_repo, local_git, branch):
    with pytest.raises(DeliveryRefused) as refused:
        push_branch(
            remote_url=forge_repo.remote,
            branch=branch,
            changes=TreeChanges(files={"x": b"1"}),
            message="x",
        )
    assert refused.value.code == "bad_branch"
    assert forge_repo.requests == []
