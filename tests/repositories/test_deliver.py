"""``deliver`` end to end, for each forge: a project's stored (encrypted) connection, real git
pushing to the forge's own smart-HTTP server, the forge's API opening then updating one pull
request; the token only in headers, and only to the forge's own host."""

import base64
import subprocess

import pytest

from repositories.delivery import Person, TreeChanges, deliver
from repositories.services import forge_connection_put
from tests.forge_stub import Forge as ForgeStub
from tests.git_server import git, make_repository

TOKEN = "glpat-Zz9Yy8Xx7Ww6"


@pytest.fixture(params=["github", "gitea", "gitlab"])
def forge(request, tmp_path, local_git):
    with ForgeStub(request.param, tmp_path / "srv", token=TOKEN) as stub:
        work = tmp_path / "work"
        stub.base = make_repository(work, {"app.py": "print('v1')\n"})
        git("push", "-q", str(stub.bare), "main", cwd=work)
        yield stub


@pytest.fixture
def connection(forge, project):
    return forge_connection_put(
        project=project,
        kind=forge.kind,
        api_url=forge.api_url,
        repository=forge.repository,
        token=TOKEN,
    )


def _deliver(connection, forge, *, content: bytes, title: str):
    return deliver(
        connection=connection,
        branch="aiflow/run-42",
        changes=TreeChanges(files={"app.py": content}),
        message=f"{title}\n\nSummary.",
        title=title,
        body=f"{title}: tests passed.",
        co_author=Person("Ada", "ada@example.org"),
        base_commit=forge.base,
    )


def test_delivering_twice_updates_the_same_branch_and_pull_request(sealed, db, forge, connection):
    first = _deliver(connection, forge, content=b"v2\n", title="First")
    second = _deliver(connection, forge, content=b"v3\n", title="Second")
    assert (first.push.parent, second.push.parent) == (forge.base, first.push.commit)
    assert git("rev-parse", "aiflow/run-42", cwd=forge.bare) == second.push.commit
    assert (first.pull_request.created, second.pull_request.created) == (True, False)
    assert first.pull_request.number == second.pull_request.number == 1
    assert [(p["head"], p["base"], p["title"]) for p in forge.pulls] == [
        ("aiflow/run-42", "main", "Second")
    ]
    assert list(sealed.tmp.iterdir()) == []


def test_the_token_is_only_ever_in_headers_to_the_forges_own_host(
    sealed, db, forge, connection, monkeypatch
):
    launched = []
    real_popen = subprocess.Popen

    def recording(args, *rest, **kwargs):
        launched.append((list(args), dict(kwargs.get("env") or {})))
        return real_popen(args, *rest, **kwargs)

    monkeypatch.setattr(subprocess, "Popen", recording)
    _deliver(connection, forge, content=b"v2\n", title="First")
    assert forge.git_basic_password() == {TOKEN}
    user = {"github": "x-access-token", "gitea": "aiflow", "gitlab": "oauth2"}[forge.kind]
    basic = base64.b64encode(f"{user}:{TOKEN}".encode()).decode()
    for _method, where, body, headers in forge.everything_sent():
        assert TOKEN not in where and TOKEN.encode() not in body
        carried = [name for name, value in headers.items() if TOKEN in value or basic in value]
        assert carried in (["authorization"], ["private-token"])
    for args, env in launched:
        assert not any(TOKEN in arg or basic in arg for arg in args)
        assert not any(TOKEN in value or basic in value for value in env.values())


def test_a_remote_url_on_another_host_gets_no_token(sealed, db, forge, project, tmp_path):
    from tests.git_server import GitHttpServer, make_bare

    make_bare(tmp_path / "mirror", "app.git", tmp_path / "work")
    with GitHttpServer(tmp_path / "mirror") as mirror:
        connection = forge_connection_put(
            project=project,
            kind=forge.kind,
            api_url=forge.api_url,
            repository=forge.repository,
            remote_url=f"http://localhost:{mirror.httpd.server_address[1]}/app.git",
            token=TOKEN,
        )
        result = _deliver(connection, forge, content=b"v2\n", title="Mirror")
        assert result.pull_request.number == 1
        assert mirror.requests
        assert all("authorization" not in r.headers for r in mirror.requests)
