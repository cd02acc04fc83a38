"""HTTP through the checks: connections pinned to checked addresses, redirects by hand."""

from __future__ import annotations

import ipaddress
import ssl
import time
import typing
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin

import certifi
import httpcore
import orjson

from .checks import Target, check_url, resolve_checked
from .policy import (
    CREDENTIAL_HEADERS,
    REDIRECT_STATUSES,
    IPAddress,
    OutboundFailed,
    OutboundPolicy,
    OutboundRefused,
)

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
