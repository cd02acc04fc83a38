"""The one door out (common.outbound): addresses checked, connections pinned, bounds kept.

The far side is a local server; DNS, the other edge, is a resolver function the policy is
given (a stub answering what an attacker's name server would).
"""

import ipaddress
import os
import ssl
import subprocess
from collections.abc import Iterator

import pytest
from django.test import override_settings

from common.outbound import (
    OutboundFailed,
    OutboundPolicy,
    OutboundRefused,
    address_refusal,
    networks,
    pin_remote,
    repository_policy,
    request,
)
from tests.stub_http import Answer, RecordingServer, tls_files


class StubDNS:
    """Answers names from a table, counting the questions (the attacker's name server)."""

    def __init__(self, table: dict[str, list[str] | list[list[str]]]):
        self.table = table
        self.questions: list[str] = []

    def __call__(self, host: str, port: int) -> list[str]:
        self.questions.append(host)
        answer = self.table[host]
        if answer and isinstance(answer[0], list):  # one answer per question, in turn
            index = min(len(self.questions_for(host)) - 1, len(answer) - 1)
            return list(answer[index])
        return list(answer)  # type: ignore[arg-type]

    def questions_for(self, host: str) -> list[str]:
        return [q for q in self.questions if q == host]


def policy(**values) -> OutboundPolicy:
    values.setdefault("schemes", frozenset({"http", "https"}))
    values.setdefault("timeout", 5.0)
    return OutboundPolicy(**values)


@pytest.fixture
def server() -> Iterator[RecordingServer]:
    with RecordingServer(lambda seen: Answer(200, {"hello": "world"})) as running:
        yield running


# --- Addresses ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("127.0.0.1", "a loopback address"),
        ("::1", "a loopback address"),
        ("169.254.169.254", "a link-local address"),
        ("fe80::1", "a link-local address"),
        ("10.0.0.5", "a private address"),
        ("192.168.1.1", "a private address"),
        ("172.16.0.1", "a private address"),
        ("fd00::1", "a private address"),
        ("0.0.0.0", "an unspecified address"),
        ("::", "an unspecified address"),
        ("224.0.0.1", "a multicast address"),
        ("ff02::1", "a multicast address"),
        ("100.64.0.1", "an address that is not globally routable"),
        ("::ffff:127.0.0.1", "an IPv6 address carrying a loopback address"),
        ("::ffff:169.254.169.254", "an IPv6 address carrying a link-local address"),
        ("2002:7f00:1::", "an IPv6 address carrying a loopback address"),
        ("2002:a9fe:a9fe::", "an IPv6 address carrying a link-local address"),
        ("64:ff9b::a00:5", "an IPv6 address carrying a private address"),
    ],
)
def test_non_public_addresses_are_refused_with_their_kind(address, reason):
    assert address_refusal(ipaddress.ip_address(address), policy()) == reason


@pytest.mark.parametrize("address", ["8.8.8.8", "140.82.112.3", "2606:4700::1111"])
def test_public_addresses_are_allowed(address):
    assert address_refusal(ipaddress.ip_address(address), policy()) is None


def test_allow_local_opens_local_addresses_but_never_multicast():
    local = policy(allow_local=True)
    assert address_refusal(ipaddress.ip_address("127.0.0.1"), local) is None
    assert address_refusal(ipaddress.ip_address("::ffff:10.0.0.5"), local) is None
    assert address_refusal(ipaddress.ip_address("224.0.0.1"), local) == "a multicast address"


def test_an_allowed_network_opens_only_itself():
    named = policy(allowed_networks=networks(["10.0.0.5"]))
    assert address_refusal(ipaddress.ip_address("10.0.0.5"), named) is None
    assert address_refusal(ipaddress.ip_address("::ffff:10.0.0.5"), named) is None
    assert address_refusal(ipaddress.ip_address("10.0.0.6"), named) == "a private address"


# --- Requests -----------------------------------------------------------------------------


def test_loopback_is_refused_by_default_and_nothing_reaches_it(server):
    with pytest.raises(OutboundRefused) as refused:
        request("GET", f"{server.url}/", policy=policy())
    assert refused.value.detail == "127.0.0.1 is a loopback address, which is not allowed."
    assert refused.value.code == "outbound_refused"
    assert server.requests == []


def test_loopback_is_reached_with_allow_local(server):
    answer = request("GET", f"{server.url}/x?y=1", policy=policy(allow_local=True))
    assert (answer.status, answer.json()) == (200, {"hello": "world"})
    assert [(seen.method, seen.path) for seen in server.requests] == [("GET", "/x")]


@override_settings(REPOSITORY_ALLOW_LOCAL=False)
def test_the_repository_policy_refuses_loopback_unless_the_operator_allows_it(server):
    with pytest.raises(OutboundRefused):
        request("GET", f"{server.url}/", policy=repository_policy(allowed_hosts=("*",)))
    with override_settings(REPOSITORY_ALLOW_LOCAL=True, REPOSITORY_ALLOWED_HOSTS=["127.0.0.1"]):
        assert request("GET", f"{server.url}/", policy=repository_policy()).status == 200
    assert len(server.requests) == 1


@pytest.mark.parametrize(
    ("address", "kind"),
    [
        ("127.0.0.1", "a loopback address"),
        ("169.254.169.254", "a link-local address"),
        ("10.0.0.5", "a private address"),
        ("::ffff:127.0.0.1", "an IPv6 address carrying a loopback address"),
    ],
)
def test_a_host_name_resolving_to_a_local_address_is_refused(server, address, kind):
    dns = StubDNS({"forge.example": [address]})
    with pytest.raises(OutboundRefused) as refused:
        request("GET", f"http://forge.example:{server.port}/", policy=policy(resolver=dns))
    assert refused.value.detail == f"forge.example resolves to {kind}, which is not allowed."
    assert dns.questions == ["forge.example"]
    assert server.requests == []


def test_one_local_address_among_public_ones_refuses_the_host(server):
    dns = StubDNS({"forge.example": ["140.82.112.3", "127.0.0.1"]})
    with pytest.raises(OutboundRefused) as refused:
        request("GET", f"http://forge.example:{server.port}/", policy=policy(resolver=dns))
    assert refused.value.detail == (
        "forge.example resolves to a loopback address, which is not allowed."
    )
    assert server.requests == []


def test_the_connection_goes_to_the_checked_address_not_a_second_dns_answer():
    # The name first resolves to an address the policy allows (127.0.0.2, named), then to one
    # it refuses (127.0.0.1): the connection must use the first answer, asked once.
    with (
        RecordingServer(lambda s: Answer(200, {"at": "checked"}), host="127.0.0.2") as checked,
        RecordingServer(lambda s: Answer(200, {"at": "rebound"}), port=checked.port) as rebound,
    ):
        dns = StubDNS({"forge.example": [["127.0.0.2"], ["127.0.0.1"]]})
        pinned = policy(resolver=dns, allowed_networks=networks(["127.0.0.2"]))
        answer = request("GET", f"http://forge.example:{checked.port}/", policy=pinned)
        assert answer.json() == {"at": "checked"}
        assert dns.questions == ["forge.example"]
        assert [seen.headers["host"] for seen in checked.requests] == [
            f"forge.example:{checked.port}"
        ]
        assert rebound.requests == []


def test_a_redirect_to_a_refused_address_is_not_followed():
    with (
        RecordingServer(host="127.0.0.2") as inside,
        RecordingServer(
            lambda s: Answer(302, b"", {"Location": f"http://127.0.0.2:{inside.port}/secret"})
        ) as outside,
    ):
        allowed = policy(allowed_networks=networks(["127.0.0.1"]))
        with pytest.raises(OutboundRefused) as refused:
            request("GET", f"{outside.url}/start", policy=allowed)
        assert refused.value.detail == "127.0.0.2 is a loopback address, which is not allowed."
        assert [seen.path for seen in outside.requests] == ["/start"]
        assert inside.requests == []


def test_a_redirect_to_a_name_resolving_to_the_metadata_service_is_refused(server):
    dns = StubDNS({"metadata.example": ["169.254.169.254"]})
    server.handler = lambda s: Answer(301, b"", {"Location": "http://metadata.example/latest"})
    allowed = policy(allowed_networks=networks(["127.0.0.1"]), resolver=dns)
    with pytest.raises(OutboundRefused) as refused:
        request("GET", f"{server.url}/", policy=allowed)
    assert refused.value.detail == (
        "metadata.example resolves to a link-local address, which is not allowed."
    )


def test_a_redirect_to_another_scheme_is_refused(server):
    server.handler = lambda s: Answer(302, b"", {"Location": "file:///etc/passwd"})
    with pytest.raises(OutboundRefused) as refused:
        request("GET", f"{server.url}/", policy=policy(allow_local=True))
    assert refused.value.detail == "The scheme 'file' is not allowed here (http, https)."


def test_credentials_are_dropped_when_a_redirect_leaves_the_origin():
    with (
        RecordingServer(host="127.0.0.2") as elsewhere,
        RecordingServer() as origin,
    ):
        origin.handler = lambda s: (
            Answer(307, b"", {"Location": "/moved"})
            if s.path == "/start"
            else Answer(302, b"", {"Location": f"{elsewhere.url}/landing"})
        )
        headers = {"Authorization": "Bearer s3cret", "Private-Token": "s3cret", "X-Other": "1"}
        answer = request(
            "GET", f"{origin.url}/start", policy=policy(allow_local=True), headers=headers
        )
        assert answer.status == 200
        assert [s.headers.get("authorization") for s in origin.requests] == [
            "Bearer s3cret",
            "Bearer s3cret",
        ]
        landed = elsewhere.requests[0].headers
        assert ("authorization" in landed, "private-token" in landed) == (False, False)
        assert landed["x-other"] == "1"


def test_redirects_are_bounded(server):
    server.handler = lambda s: Answer(302, b"", {"Location": "/again"})
    with pytest.raises(OutboundFailed) as failed:
        request("GET", f"{server.url}/", policy=policy(allow_local=True, max_redirects=3))
    assert failed.value.code == "too_many_redirects"
    assert len(server.requests) == 4


@pytest.mark.parametrize("chunked", [False, True])
def test_an_oversize_answer_is_cut_off_and_refused(server, chunked):
    server.handler = lambda s: Answer(200, b"x" * 300_000, chunked=chunked)
    with pytest.raises(OutboundFailed) as failed:
        request(
            "GET", f"{server.url}/", policy=policy(allow_local=True, max_response_bytes=100_000)
        )
    assert failed.value.code == "response_too_large"
    assert failed.value.detail == "The answer is larger than 100000 bytes; it was cut off."


def test_an_answer_within_the_size_bound_is_read_whole(server):
    server.handler = lambda s: Answer(200, b"x" * 100_000, chunked=True)
    answer = request(
        "GET", f"{server.url}/", policy=policy(allow_local=True, max_response_bytes=100_000)
    )
    assert answer.content == b"x" * 100_000


def test_a_server_that_never_answers_ends_in_a_timeout():
    import socket

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)  # accepts the connection, never answers
    try:
        url = f"http://127.0.0.1:{listener.getsockname()[1]}/"
        with pytest.raises(OutboundFailed) as failed:
            request("GET", url, policy=policy(allow_local=True, timeout=0.5))
        assert failed.value.code == "timeout"
    finally:
        listener.close()


def test_a_host_outside_the_allow_list_is_refused_before_any_dns_question(server):
    dns = StubDNS({"evil.example": ["140.82.112.3"]})
    allowed = policy(allowed_hosts=("github.com", ".example.org"), resolver=dns)
    with pytest.raises(OutboundRefused) as refused:
        request("GET", "https://evil.example/", policy=allowed)
    assert refused.value.detail == "The host evil.example is not on the list of allowed hosts."
    assert dns.questions == []


@pytest.mark.parametrize(
    ("url", "detail"),
    [
        ("ftp://github.com/x", "The scheme 'ftp' is not allowed here (http, https)."),
        ("file:///etc/passwd", "The scheme 'file' is not allowed here (http, https)."),
        ("https://user:pw@github.com/", "A URL may not carry credentials; give them separately."),
        ("https://github.com:99999/", "'https://github.com:99999/' is not a valid URL."),
        ("https:///nohost", "'https:///nohost' names no host."),
    ],
)
def test_bad_urls_are_refused_in_plain_words(url, detail):
    with pytest.raises(OutboundRefused) as refused:
        request("GET", url, policy=policy())
    assert refused.value.detail == detail


# --- TLS ----------------------------------------------------------------------------------


def _tls_server(tmp_path, certificate_name: str) -> tuple[RecordingServer, ssl.SSLContext]:
    ca, cert, key = tls_files(tmp_path, certificate_name)
    server_side = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_side.load_cert_chain(cert, key)
    client_side = ssl.create_default_context(cafile=str(ca))
    return RecordingServer(tls=server_side), client_side


def test_tls_goes_to_the_checked_address_with_the_host_name_for_sni_and_certificate(tmp_path):
    running, trust = _tls_server(tmp_path, "forge.example")
    with running:
        dns = StubDNS({"forge.example": ["127.0.0.1"]})
        pinned = policy(resolver=dns, allowed_networks=networks(["127.0.0.1"]))
        answer = request(
            "GET", f"https://forge.example:{running.port}/", policy=pinned, ssl_context=trust
        )
        assert answer.status == 200
        assert running.server_names == ["forge.example"]


def test_a_certificate_for_another_name_fails_even_at_the_checked_address(tmp_path):
    running, trust = _tls_server(tmp_path, "other.example")
    with running:
        dns = StubDNS({"forge.example": ["127.0.0.1"]})
        pinned = policy(resolver=dns, allowed_networks=networks(["127.0.0.1"]))
        with pytest.raises(OutboundFailed) as failed:
            request(
                "GET", f"https://forge.example:{running.port}/", policy=pinned, ssl_context=trust
            )
        assert failed.value.code == "unreachable"
        assert running.requests == []


# --- git and ssh --------------------------------------------------------------------------


def test_git_is_pinned_to_the_checked_address_and_told_not_to_follow_redirects(server):
    dns = StubDNS({"forge.example": ["127.0.0.1"]})
    pinned = pin_remote(
        f"http://forge.example:{server.port}/o/r.git",
        policy(resolver=dns, allowed_networks=networks(["127.0.0.1"])),
    )
    assert pinned.git_args() == [
        "-c",
        f"http.curloptResolve=forge.example:{server.port}:127.0.0.1",
        "-c",
        "http.followRedirects=false",
    ]
    # git itself connects where it is pinned: forge.example resolves nowhere else here.
    env = {"PATH": os.environ["PATH"], "HOME": "/nonexistent", "GIT_CONFIG_NOSYSTEM": "1"}
    subprocess.run(
        ["git", *pinned.git_args(), "ls-remote", f"http://forge.example:{server.port}/o/r.git"],
        env=env,
        capture_output=True,
        check=False,
        timeout=30,
    )
    assert server.requests[0].path == "/o/r.git/info/refs"
    assert server.requests[0].headers["host"] == f"forge.example:{server.port}"


def test_ipv6_addresses_are_bracketed_for_curl():
    dns = StubDNS({"forge.example": ["2606:4700::1111", "140.82.112.3"]})
    pinned = pin_remote("https://forge.example/o/r.git", policy(resolver=dns))
    assert pinned.git_config[0] == (
        "http.curloptResolve",
        "forge.example:443:[2606:4700::1111],140.82.112.3",
    )


def test_ssh_is_pinned_by_host_name_option_and_keys_looked_up_by_name():
    dns = StubDNS({"forge.example": ["140.82.112.3"]})
    pinned = pin_remote("ssh://git@forge.example:2222/o/r.git", policy(resolver=dns))
    assert pinned.ssh_options == (
        "-o",
        "HostName=140.82.112.3",
        "-o",
        "HostKeyAlias=forge.example",
    )
    assert (pinned.target.port, pinned.git_config) == (2222, ())


def test_an_ssh_remote_resolving_to_the_metadata_service_is_refused():
    dns = StubDNS({"forge.example": ["169.254.169.254"]})
    with pytest.raises(OutboundRefused) as refused:
        pin_remote("ssh://git@forge.example/o/r.git", policy(resolver=dns))
    assert refused.value.detail == (
        "forge.example resolves to a link-local address, which is not allowed."
    )


def test_a_remote_with_a_scheme_git_does_not_speak_here_is_refused():
    with pytest.raises(OutboundRefused) as refused:
        pin_remote("ext::sh -c touch% /tmp/pwned", policy())
    assert refused.value.code == "outbound_refused"
