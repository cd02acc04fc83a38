"""git and ssh: the options that pin their own connections to checked addresses."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from .checks import Target, check_url, resolve_checked
from .policy import IPAddress, OutboundPolicy

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
