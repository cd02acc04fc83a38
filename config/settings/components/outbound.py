"""Settings of requests made on a user's behalf (``common.outbound``), from the environment.

Every forge API call and git remote goes through one checked door: the host name against
``REPOSITORY_ALLOWED_HOSTS``, then every address it resolves to against the address policy
(no loopback, link-local, private, multicast or other non-global address unless
``REPOSITORY_ALLOW_LOCAL`` is true or the address is inside ``REPOSITORY_ALLOWED_NETWORKS``).
"""

import ipaddress

from django.core.exceptions import ImproperlyConfigured

from ..env import env

# Let imports, forge calls and git remotes reach loopback, private and link-local addresses,
# plain http:// and file:// (tests and single-host setups only; off in any shared deployment).
REPOSITORY_ALLOW_LOCAL = env.bool("REPOSITORY_ALLOW_LOCAL", default=False)
# Host names imports, forge calls and git remotes may reach (comma-separated; ".example.com"
# covers the domain and its subdomains; "*" any host, its addresses still checked). The default
# is the public forges; add a self-hosted forge's name here.
REPOSITORY_ALLOWED_HOSTS = env.list(
    "REPOSITORY_ALLOWED_HOSTS",
    default=["github.com", "api.github.com", "gitlab.com", "codeberg.org", "gitea.com"],
)
# Addresses or networks (CIDR, comma-separated) reachable although local, e.g. a self-hosted
# forge at 10.0.0.5, without opening every local address as REPOSITORY_ALLOW_LOCAL does.
REPOSITORY_ALLOWED_NETWORKS = env.list("REPOSITORY_ALLOWED_NETWORKS", default=[])
# Seconds one outbound request may take in all (connection, redirects, the whole answer).
OUTBOUND_TIMEOUT_SECONDS = env.float("OUTBOUND_TIMEOUT_SECONDS", default=15.0)
# Largest answer an outbound request reads, in bytes; a larger one is cut off and refused.
OUTBOUND_MAX_RESPONSE_BYTES = env.int("OUTBOUND_MAX_RESPONSE_BYTES", default=10 * 1024 * 1024)
# Redirects an outbound request follows at most (each checked like the first URL).
OUTBOUND_MAX_REDIRECTS = env.int("OUTBOUND_MAX_REDIRECTS", default=5)

for _host in REPOSITORY_ALLOWED_HOSTS:
    if not _host or "/" in _host or "@" in _host or _host.count(":") == 1:
        raise ImproperlyConfigured(
            f"REPOSITORY_ALLOWED_HOSTS lists host names, not URLs or ports: {_host!r}"
        )
for _network in REPOSITORY_ALLOWED_NETWORKS:
    try:
        ipaddress.ip_network(_network.strip(), strict=False)
    except ValueError as _exc:
        raise ImproperlyConfigured(
            f"REPOSITORY_ALLOWED_NETWORKS: {_network!r} is not an address or a CIDR network"
        ) from _exc
if OUTBOUND_TIMEOUT_SECONDS <= 0:
    raise ImproperlyConfigured("OUTBOUND_TIMEOUT_SECONDS must be positive")
if OUTBOUND_MAX_RESPONSE_BYTES < 1024:
    raise ImproperlyConfigured("OUTBOUND_MAX_RESPONSE_BYTES must be at least 1024")
if not 0 <= OUTBOUND_MAX_REDIRECTS <= 20:
    raise ImproperlyConfigured("OUTBOUND_MAX_REDIRECTS must be between 0 and 20")
