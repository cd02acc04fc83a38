"""The one door out: every request made on a user's behalf goes through here.

A forge API call, a git fetch or push, a webhook delivery: each names a URL a user gave us,
so each could be aimed at the platform's own network (the cloud metadata service at
169.254.169.254, a database on 10.0.0.5, an admin port on 127.0.0.1). The defence:

- the URL's scheme and host are checked first (the scheme against the caller's list, the
  host name against an allow-list, without a DNS look-up);
- the host is resolved once, and **every** address it resolves to is checked against the
  policy: loopback, link-local, private, multicast, unspecified, reserved and other
  non-global addresses are refused, including IPv4 addresses hidden inside IPv6 ones
  (IPv4-mapped ``::ffff:127.0.0.1``, 6to4 ``2002::/16``, NAT64 ``64:ff9b::/96``, Teredo),
  unless the caller's policy allows local addresses or names the network;
- the connection goes to an address that was checked, never to a second DNS answer, so a
  name cannot resolve to a public address for the check and a private one for the connection
  (DNS rebinding); TLS still sends the host name (SNI) and checks the certificate against it;
- redirects are followed by hand, each hop through the same checks, with credentials
  dropped when the origin changes; time and response size are bounded.

git and ssh connect by themselves, so for them this module gives the options that pin their
connection to checked addresses: ``http.curloptResolve`` (git >= 2.37) for HTTP(S), and
``HostName=<address>`` with ``HostKeyAlias=<host>`` for ssh.
"""

from __future__ import annotations

import ipaddress
import socket
import ssl
import time
import typing
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urljoin, urlsplit

import certifi
import httpcore
import orjson
from django.conf import settings
from django.http.request import validate_host
from rest_framework import status

from common.errors import ApplicationError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
# Answers a host name with its addresses (as strings), in the order to try them.
Resolver = Callable[[str, int], list[str]]

DEFAULT_PORTS = {"http": 80, "https": 443, "ssh": 22, "git": 9418}
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
# Headers that carry credentials: dropped when a redirect leaves the origin they were for.
CREDENTIAL_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie", "private-token"})
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")


class OutboundRefused(ApplicationError):
    """The URL or an address it resolves to is not one the policy lets us reach."""

    code = "outbound_refused"


class OutboundFailed(ApplicationError):
    """The far side could not be reached, or answered too slowly, too much or unreadably."""

    status_code = status.HTTP_502_BAD_GATEWAY
    code = "outbound_failed"


def system_resolver(host: str, port: int) -> list[str]:
    """The operating system's answer for ``host`` (every address, in its order, once each)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise OutboundFailed(f"{host} could not be resolved.", code="unresolvable") from exc
    seen: list[str] = []
    for info in infos:
        address = str(info[4][0]).split("%", 1)[0]  # drop an IPv6 zone index
        if address not in seen:
            seen.append(address)
    return seen


@dataclass(frozen=True)
class OutboundPolicy:
    """What one kind of outbound request may reach, and how long and how much it may take.

    ``allowed_hosts`` holds host names as Django's ``ALLOWED_HOSTS`` does: an exact name,
    ``.example.com`` for the domain and its subdomains, ``*`` for any host (the addresses are
    checked all the same). ``allowed_networks`` are addresses or networks reachable even
    though local (a self-hosted forge on the private network), without opening every local
    address as ``allow_local`` does.
    """

    allow_local: bool = False
    allowed_hosts: tuple[str, ...] = ("*",)
    allowed_networks: tuple[IPNetwork, ...] = ()
    schemes: frozenset[str] = frozenset({"https"})
    timeout: float = 15.0
    max_response_bytes: int = 10 * 1024 * 1024
    max_redirects: int = 5
    resolver: Resolver = field(default=system_resolver, compare=False)


def networks(values: Iterable[str]) -> tuple[IPNetwork, ...]:
    """Parse addresses or CIDR networks (``10.0.0.5``, ``10.1.0.0/16``); ValueError if bad."""
    return tuple(ipaddress.ip_network(value.strip(), strict=False) for value in values)


def repository_policy(**overrides: Any) -> OutboundPolicy:
    """The policy of forge API calls and git remotes, from the ``REPOSITORY_*`` settings.

    With ``REPOSITORY_ALLOW_LOCAL`` plain ``http`` is allowed too (a forge on the same host
    or a test server); otherwise only ``https``.
    """
    allow_local = settings.REPOSITORY_ALLOW_LOCAL
    values: dict[str, Any] = {
        "allow_local": allow_local,
        "allowed_hosts": tuple(settings.REPOSITORY_ALLOWED_HOSTS),
        "allowed_networks": networks(settings.REPOSITORY_ALLOWED_NETWORKS),
        "schemes": frozenset({"https", "http"} if allow_local else {"https"}),
        "timeout": settings.OUTBOUND_TIMEOUT_SECONDS,
        "max_response_bytes": settings.OUTBOUND_MAX_RESPONSE_BYTES,
        "max_redirects": settings.OUTBOUND_MAX_REDIRECTS,
    }
    values.update(overrides)
    return OutboundPolicy(**values)


# A webhook's answer is read only for its status: a receiver's page of HTML is plenty.
WEBHOOK_MAX_RESPONSE_BYTES = 256 * 1024


def webhooks_policy(**overrides: Any) -> OutboundPolicy:
    """The policy of webhook deliveries, from the ``WEBHOOKS_*`` settings.

    Any host name, but every address it resolves to checked: no loopback, private or
    link-local address unless ``WEBHOOKS_ALLOW_LOCAL`` (which also allows plain ``http``;
    otherwise only ``https``). Redirects are not followed (a delivery is a signed POST to the
    URL its owner gave: a 3xx is a failed attempt), and the answer is read only up to
    ``WEBHOOK_MAX_RESPONSE_BYTES``.
    """
    allow_local = settings.WEBHOOKS_ALLOW_LOCAL
    values: dict[str, Any] = {
        "allow_local": allow_local,
        "allowed_hosts": ("*",),
        "schemes": frozenset({"https", "http"} if allow_local else {"https"}),
        "timeout": settings.WEBHOOKS_TIMEOUT_SECONDS,
        "max_response_bytes": WEBHOOK_MAX_RESPONSE_BYTES,
        "max_redirects": 0,
    }
    values.update(overrides)
    return OutboundPolicy(**values)


# --- Addresses ----------------------------------------------------------------------------


def _embedded_ipv4(address: IPAddress) -> list[ipaddress.IPv4Address]:
    """IPv4 addresses an IPv6 address carries inside it and may be routed to (6to4, Teredo,
    NAT64); an IPv4-mapped address is judged as the IPv4 address it is."""
    if not isinstance(address, ipaddress.IPv6Address):
        return []
    found: list[ipaddress.IPv4Address] = []
    if address.sixtofour is not None:
        found.append(address.sixtofour)
    if address.teredo is not None:
        found.extend(address.teredo)
    if address in _NAT64:
        found.append(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
    return found


def _category(address: IPAddress) -> str | None:
    """Why ``address`` is not a public unicast address, or None when it is one."""
    if address.is_multicast:
        return "a multicast address"
    if address.is_unspecified:
        return "an unspecified address"
    if address.is_loopback:
        return "a loopback address"
    if address.is_link_local:
        return "a link-local address"
    if address.is_private:
        return "a private address"
    if address.is_reserved:
        return "a reserved address"
    if not address.is_global:
        return "an address that is not globally routable"
    return None


def address_refusal(address: IPAddress, policy: OutboundPolicy) -> str | None:
    """Why ``policy`` refuses ``address`` (plain words), or None when it may be reached.

    Multicast is never reachable (no TCP connection goes there). An address inside
    ``allowed_networks`` is reachable; so is any other with ``allow_local``.
    """
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        # The socket goes to the IPv4 address itself: judge that one.
        reason = address_refusal(address.ipv4_mapped, policy)
        return f"an IPv6 address carrying {reason}" if reason else None
    if address.is_multicast:
        return "a multicast address"
    if _allowed_explicitly(address, policy):
        return None
    for inner in _embedded_ipv4(address):
        if inner.is_multicast:
            return "an IPv6 address carrying a multicast address"
        reason = None if _allowed_explicitly(inner, policy) else _category(inner)
        if reason:
            return f"an IPv6 address carrying {reason}"
    if policy.allow_local:
        return None
    return _category(address)


def _allowed_explicitly(address: IPAddress, policy: OutboundPolicy) -> bool:
    return policy.allow_local or any(
        address.version == network.version and address in network
        for network in policy.allowed_networks
    )


# --- URLs ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    """A URL that passed the scheme and host checks (nothing resolved yet)."""

    url: str
    scheme: str
    host: str  # lower case, IDNA-encoded, without brackets
    port: int
    literal: IPAddress | None  # the host when the URL names an address

    @property
    def origin(self) -> tuple[str, str, int]:
        return (self.scheme, self.host, self.port)


def _host_ascii(host: str) -> str:
    try:
        encoded = host.encode("idna").decode("ascii")
    except UnicodeError as exc:
        raise OutboundRefused(f"{host!r} is not a valid host name.") from exc
    labels = encoded.rstrip(".").split(".")
    if not all(
        0 < len(label) <= 63
        and label[0] != "-"
        and label[-1] != "-"
        and all(c.isalnum() or c in "-_" for c in label)
        for label in labels
    ):
        raise OutboundRefused(f"{host!r} is not a valid host name.")
    return encoded.rstrip(".").lower()


def check_url(url: str, policy: OutboundPolicy, *, schemes: Iterable[str] | None = None) -> Target:
    """Check ``url``'s scheme, credentials and host name; refuse with a plain reason.

    Nothing is resolved here. A URL carrying credentials (``https://user:pass@host``) is
    refused: credentials travel in headers, never in a URL.
    """
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise OutboundRefused(f"{url!r} is not a valid URL.") from exc
    scheme = parts.scheme.lower()
    allowed = frozenset(schemes) if schemes is not None else policy.schemes
    if scheme not in allowed:
        names = ", ".join(sorted(allowed)) or "none"
        raise OutboundRefused(f"The scheme {scheme or '(none)'!r} is not allowed here ({names}).")
    if parts.password is not None or (parts.username is not None and scheme != "ssh"):
        raise OutboundRefused("A URL may not carry credentials; give them separately.")
    raw = parts.hostname
    if not raw:
        raise OutboundRefused(f"{url!r} names no host.")
    literal: IPAddress | None
    try:
        literal = ipaddress.ip_address(raw)
        host = str(literal)
    except ValueError:
        literal = None
        host = _host_ascii(raw)
    if not validate_host(host, list(policy.allowed_hosts)):
        raise OutboundRefused(f"The host {host} is not on the list of allowed hosts.")
    if port is None:
        if scheme not in DEFAULT_PORTS:
            raise OutboundRefused(f"{url!r} names no port.")
        port = DEFAULT_PORTS[scheme]
    return Target(url=url, scheme=scheme, host=host, port=port, literal=literal)


def resolve_checked(target: Target, policy: OutboundPolicy) -> list[IPAddress]:
    """The addresses ``target`` may be reached at: every one the resolver gives, all checked.

    One refused address refuses the host: an attacker who controls the DNS answer chooses
    which of several addresses a client tries.
    """
    if target.literal is not None:
        answers = [target.literal]
    else:
        answers = []
        for value in policy.resolver(target.host, target.port):
            try:
                answers.append(ipaddress.ip_address(value))
            except ValueError as exc:
                raise OutboundFailed(f"{target.host} resolved to something unusable.") from exc
        if not answers:
            raise OutboundFailed(f"{target.host} could not be resolved.", code="unresolvable")
    for address in answers:
        reason = address_refusal(address, policy)
        if reason:
            where = "is" if target.literal is not None else "resolves to"
            raise OutboundRefused(f"{target.host} {where} {reason}, which is not allowed.")
    return answers


# --- HTTP ---------------------------------------------------------------------------------


class _CheckedBackend(httpcore.NetworkBackend):
    """httpcore's network backend that connects only to addresses the policy accepted.

    httpcore asks it for ``host:port`` (the URL's) and then starts TLS with the URL's host
    name, so SNI and the certificate check stay on the name while the socket goes to the
    checked address.
    """

    def __init__(self, policy: OutboundPolicy):
        self.policy = policy
        self.inner = httpcore.SyncBackend()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: typing.Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.NetworkStream:
        try:
            literal: IPAddress | None = ipaddress.ip_address(host.strip("[]"))
        except ValueError:
            literal = None
        target = Target(url="", scheme="", host=host, port=port, literal=literal)
        failure: Exception | None = None
        for address in resolve_checked(target, self.policy):
            try:
                return self.inner.connect_tcp(
                    str(address), port, timeout, local_address, socket_options
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                failure = exc
        assert failure is not None  # noqa: S101 - resolve_checked never answers empty
        raise failure

    def connect_unix_socket(self, *args: Any, **kwargs: Any) -> httpcore.NetworkStream:
        raise OutboundRefused("Unix sockets are not reachable from here.")


@dataclass
class OutboundResponse:
    """A whole response, read within the policy's bounds."""

    status: int
    headers: dict[str, str]  # names in lower case; a repeated header's values joined by ", "
    content: bytes
    url: str  # the URL that answered (after redirects)

    def json(self) -> Any:
        try:
            return orjson.loads(self.content)
        except orjson.JSONDecodeError as exc:
            raise OutboundFailed("The answer was not JSON.", code="bad_answer") from exc

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", "replace")


def _headers(raw: Sequence[tuple[bytes, bytes]]) -> dict[str, str]:
    merged: dict[str, str] = {}
    for name, value in raw:
        key = name.decode("latin-1").lower()
        text = value.decode("latin-1")
        merged[key] = f"{merged[key]}, {text}" if key in merged else text
    return merged


def _read_bounded(response: httpcore.Response, policy: OutboundPolicy, deadline: float) -> bytes:
    chunks: list[bytes] = []
    total = 0
    for chunk in response.iter_stream():
        total += len(chunk)
        if total > policy.max_response_bytes:
            raise OutboundFailed(
                f"The answer is larger than {policy.max_response_bytes} bytes; it was cut off.",
                code="response_too_large",
            )
        if time.monotonic() > deadline:
            raise OutboundFailed("The request took too long.", code="timeout")
        chunks.append(chunk)
    return b"".join(chunks)


def default_ssl_context() -> ssl.SSLContext:
    """Certificates checked against certifi's roots, as httpx and requests do."""
    return ssl.create_default_context(cafile=certifi.where())


def request(
    method: str,
    url: str,
    *,
    policy: OutboundPolicy,
    headers: dict[str, str] | None = None,
    json: Any = None,
    content: bytes | None = None,
    ssl_context: ssl.SSLContext | None = None,
) -> OutboundResponse:
    """Send one request under ``policy`` and read the whole answer (any status).

    Raises ``OutboundRefused`` when the URL, a redirect or an address is not allowed, and
    ``OutboundFailed`` when the far side cannot be reached, is too slow (``policy.timeout``
    covers the whole exchange, redirects included), answers more than
    ``policy.max_response_bytes`` or redirects too often. Credentials (``Authorization``,
    ``Private-Token``, cookies) are sent only to the origin they were given for.
    """
    deadline = time.monotonic() + policy.timeout
    sent = {"accept-encoding": "identity", **{k.lower(): v for k, v in (headers or {}).items()}}
    body = content
    if json is not None:
        body = orjson.dumps(json)
        sent.setdefault("content-type", "application/json")
    target = check_url(url, policy)
    origin = target.origin
    pool = httpcore.ConnectionPool(
        ssl_context=ssl_context or default_ssl_context(),
        network_backend=_CheckedBackend(policy),
        retries=0,
        max_connections=2,
    )
    try:
        with pool:
            for _hop in range(policy.max_redirects + 1):
                if target.origin != origin:
                    sent = {k: v for k, v in sent.items() if k not in CREDENTIAL_HEADERS}
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise OutboundFailed("The request took too long.", code="timeout")
                limits = {"connect": remaining, "read": remaining, "write": remaining}
                with pool.stream(
                    method.upper(),
                    target.url,
                    headers=list(sent.items()),
                    content=body,
                    extensions={"timeout": {**limits, "pool": remaining}},
                ) as response:
                    answer = _headers(response.headers)
                    location = answer.get("location")
                    if response.status in REDIRECT_STATUSES and location:
                        next_url = urljoin(target.url, location)
                        if response.status == 303 or (
                            response.status in (301, 302) and method.upper() == "POST"
                        ):
                            method, body = "GET", None
                            sent.pop("content-type", None)
                        target = check_url(next_url, policy)
                        continue
                    data = _read_bounded(response, policy, deadline)
                    return OutboundResponse(
                        status=response.status, headers=answer, content=data, url=target.url
                    )
            raise OutboundFailed(
                f"More than {policy.max_redirects} redirects.", code="too_many_redirects"
            )
    except httpcore.TimeoutException as exc:
        raise OutboundFailed("The request took too long.", code="timeout") from exc
    except httpcore.ConnectError as exc:
        raise OutboundFailed(f"Could not connect to {target.host}.", code="unreachable") from exc
    except httpcore.ProtocolError as exc:
        raise OutboundFailed(f"{target.host} broke the HTTP exchange.", code="bad_answer") from exc
    except httpcore.NetworkError as exc:
        raise OutboundFailed(f"The connection to {target.host} failed.", code="unreachable") from (
            exc
        )


# --- git and ssh --------------------------------------------------------------------------


@dataclass(frozen=True)
class PinnedRemote:
    """A git remote whose host was resolved and checked once, and where git must connect.

    ``git_config`` are ``(key, value)`` pairs for ``git -c key=value`` (or a config file):
    for HTTP(S) they pin curl's resolution of the host to the checked addresses and stop
    git from following redirects (a redirect to another host would be resolved afresh).
    ``ssh_options`` are for the ``ssh`` command git runs: connect to the checked address
    while host keys are still looked up under the host name.
    """

    target: Target
    addresses: tuple[IPAddress, ...]
    git_config: tuple[tuple[str, str], ...]
    ssh_options: tuple[str, ...]

    def git_args(self) -> list[str]:
        """The pins as ``git -c`` arguments (no secrets in them)."""
        args: list[str] = []
        for key, value in self.git_config:
            args += ["-c", f"{key}={value}"]
        return args


def _curl_address(address: IPAddress) -> str:
    return f"[{address}]" if isinstance(address, ipaddress.IPv6Address) else str(address)


def pin_remote(url: str, policy: OutboundPolicy) -> PinnedRemote:
    """Check a git remote (``https://``, ``http://`` if the policy allows it, ``ssh://``),
    resolve its host once, and say how git must connect to the checked addresses.

    Only URL syntax is accepted for ssh (``ssh://git@host/owner/repo.git``), never the
    scp-like ``git@host:owner/repo.git``, which has no unambiguous host to check.
    """
    schemes = set(policy.schemes) | {"ssh"}
    target = check_url(url, policy, schemes=schemes)
    addresses = tuple(resolve_checked(target, policy))
    if target.scheme == "ssh":
        return PinnedRemote(
            target=target,
            addresses=addresses,
            git_config=(),
            ssh_options=("-o", f"HostName={addresses[0]}", "-o", f"HostKeyAlias={target.host}"),
        )
    resolve = f"{target.host}:{target.port}:{','.join(_curl_address(a) for a in addresses)}"
    return PinnedRemote(
        target=target,
        addresses=addresses,
        git_config=(("http.curloptResolve", resolve), ("http.followRedirects", "false")),
        ssh_options=(),
    )
