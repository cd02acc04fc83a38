"""What may be reached: the errors, the policy, and the repository and webhook policies."""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
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
