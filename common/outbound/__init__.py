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

from .checks import Target, address_refusal, check_url, resolve_checked
from .git import PinnedRemote, pin_remote
from .http import OutboundResponse, default_ssl_context, request
from .policy import (
    CREDENTIAL_HEADERS,
    DEFAULT_PORTS,
    REDIRECT_STATUSES,
    WEBHOOK_MAX_RESPONSE_BYTES,
    IPAddress,
    IPNetwork,
    OutboundFailed,
    OutboundPolicy,
    OutboundRefused,
    Resolver,
    networks,
    repository_policy,
    system_resolver,
    webhooks_policy,
)

__all__ = [
    "CREDENTIAL_HEADERS",
    "DEFAULT_PORTS",
    "IPAddress",
    "IPNetwork",
    "OutboundFailed",
    "OutboundPolicy",
    "OutboundRefused",
    "OutboundResponse",
    "PinnedRemote",
    "REDIRECT_STATUSES",
    "Resolver",
    "Target",
    "WEBHOOK_MAX_RESPONSE_BYTES",
    "address_refusal",
    "check_url",
    "default_ssl_context",
    "networks",
    "pin_remote",
    "repository_policy",
    "request",
    "resolve_checked",
    "system_resolver",
    "webhooks_policy",
]
