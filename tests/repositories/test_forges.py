"""The forge adapters against local servers speaking GitHub REST v3, Gitea API v1 and GitLab
API v4: one pull request opened, updated (never a second) on the next delivery, the token in
its header only."""

import pytest

from common.outbound import networks, repository_policy
from common.secrets import Secret
from repositories.delivery import forge_for
from repositories.errors import DeliveryFailed
from tests.forge_stub import Forge as ForgeStub

TOKEN = "tok_9f8e7d6c5b4a"
KINDS = ["github", "gitea", "gitlab"]
AUTH_HEADER = {
    "github": ("authorization", f"Bearer {TOKEN}"),
    "gitea": ("authorization", f"token {TOKEN}"),
    "gitlab": ("private-token", TOKEN),
}


@pytest.fixture(params=KINDS)
def forge(request, tmp_path):
    with ForgeStub(request.param, tmp_path / "srv", token=TOKEN) as stub:
        yield stub


def adapter(stub: ForgeStub, token: str = TOKEN):
    policy = repository_policy(
        allowed_hosts=("127.0.0.1",),
        allowed_networks=networks(["127.0.0.1"]),
        schemes=frozenset({"http", "https"}),
    )
    return forge_for(
        stub.kind,
        api_url=stub.api_url,
        repository=stub.repository,
        token=Secret(token),
        policy=policy,
    )


def test_a_pull_request_is_opened_then_updated_never_duplicated(forge):
    client = adapter(forge)
    first = client.open_or_update_pull_request(branch="aiflow/run-1", title="One", body="first")
    second = client.open_or_update_pull_request(branch="aiflow/run-1", title="Two", body="second")
    assert (first.created, second.created) == (True, False)
    assert (first.number, second.number) == (1, 1)
    assert (first.head, first.base) == ("aiflow/run-1", "main")
    assert second.url == first.url
    assert [(p["number"], p["title"], p["body"]) for p in forge.pulls] == [(1, "Two", "second")]


def test_another_branch_gets_its_own_pull_request(forge):
    client = adapter(forge)
    client.open_or_update_pull_request(branch="aiflow/run-1", title="One", body="")
    other = client.open_or_update_pull_request(branch="aiflow/run-2", title="Two", body="")
    assert (other.number, len(forge.pulls)) == (2, 2)


def test_the_token_travels_only_in_its_header(forge):
    client = adapter(forge)
    client.open_or_update_pull_request(branch="aiflow/run-1", title="One", body="body")
    client.open_or_update_pull_request(branch="aiflow/run-1", title="One", body="body 2")
    name, value = AUTH_HEADER[forge.kind]
    sent = forge.server.api_requests
    assert len(sent) >= 4
    for seen in sent:
        assert seen.headers[name] == value
        assert TOKEN not in seen.path + str(seen.query)
        assert TOKEN.encode() not in seen.body
        others = {k: v for k, v in seen.headers.items() if k != name}
        assert not any(TOKEN in v for v in others.values())


def test_a_refused_token_is_a_plain_error(forge):
    with pytest.raises(DeliveryFailed) as failed:
        adapter(forge, token="wrong").open_or_update_pull_request(
            branch="aiflow/run-1", title="One", body=""
        )
    assert (failed.value.code, failed.value.status_code) == ("forge_auth", 502)
    assert failed.value.detail == "The forge refused the token (HTTP 401)."
    assert forge.pulls == []


def test_the_git_header_is_basic_with_the_forges_user_name(forge):
    import base64

    header = adapter(forge).git_http_header().reveal()
    user = {"github": "x-access-token", "gitea": "aiflow", "gitlab": "oauth2"}[forge.kind]
    assert header == "Authorization: Basic " + base64.b64encode(f"{user}:{TOKEN}".encode()).decode()


def test_an_unknown_forge_kind_is_refused():
    with pytest.raises(DeliveryFailed) as failed:
        forge_for("bitbucket", api_url="https://x", repository="a/b", token=Secret("t"))
    assert failed.value.code == "forge_unknown"
