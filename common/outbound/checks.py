"""Addresses and URLs checked against a policy, before any connection."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

from django.http.request import validate_host

from .policy import (
    DEFAULT_PORTS,
    IPAddress,
    OutboundFailed,
    OutboundPolicy,
    OutboundRefused,
)

# --- Addresses ----------------------------------------------------------------------------

_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")


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
