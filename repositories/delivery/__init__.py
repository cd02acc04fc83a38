"""Delivery: a branch with one commit per delivery, and a pull request on the forge.

``deliver`` is what a delivery task calls with a project's ``ForgeConnection``: it decrypts
the token and SSH key (here, and nowhere else), pushes with ``push.push_branch`` and opens or
updates the pull request with the forge's adapter (``forges``). The pieces are usable alone:
``push_branch`` for any remote, ``forge_for(...).open_or_update_pull_request`` for the API.
Nothing here imports the pipeline.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..gitcmd import GitCredentials, SourcePolicy
from ..models import ForgeConnection
from ..tree import ImportedTree, ImportLimits
from .forges import Forge, PullRequest, forge_for
from .push import Person, PushResult, TreeChanges, check_branch, push_branch

__all__ = [
    "Delivery",
    "Forge",
    "Person",
    "PullRequest",
    "PushResult",
    "TreeChanges",
    "check_branch",
    "deliver",
    "forge_for",
    "push_branch",
]


@dataclass(frozen=True)
class Delivery:
    """The outcome of ``deliver``: the push, and the pull request when one was asked for."""

    push: PushResult
    pull_request: PullRequest | None


def forge_of(connection: ForgeConnection) -> Forge:
    """The forge adapter of ``connection``, its token decrypted (for the delivery task)."""
    token = connection.secret("token")
    if token is None:
        from ..errors import DeliveryFailed

        raise DeliveryFailed("The project's forge connection has no token.", code="forge_auth")
    return forge_for(
        connection.kind, api_url=connection.api_url, repository=connection.repository, token=token
    )


def deliver(
    *,
    connection: ForgeConnection,
    branch: str,
    changes: TreeChanges,
    message: str,
    title: str,
    body: str,
    co_author: Person | None = None,
    base_commit: str | None = None,
    base_tree: ImportedTree | None = None,
    pull_request: bool = True,
    base_branch: str | None = None,
    delivery_key: str | None = None,
    sources: SourcePolicy | None = None,
    limits: ImportLimits | None = None,
) -> Delivery:
    """Push ``changes`` as one commit to ``branch`` of the connection's remote and, with
    ``pull_request``, open (or update: found by its head branch) the pull request.

    The token goes only to the forge's own hosts: as a header to its API, and to the git
    remote only when the remote is on one of those hosts (a ``remote_url`` elsewhere gets
    none). The SSH key, when set, is used for ``ssh://`` remotes. Delivering again with the
    same branch updates the same branch and the same pull request.
    """
    forge = forge_of(connection)
    credentials = GitCredentials(
        http_header=forge.git_http_header(),
        header_origins=forge.token_origins(),
        ssh_private_key=connection.secret("ssh_key"),
    )
    pushed = push_branch(
        remote_url=connection.clone_url,
        branch=branch,
        changes=changes,
        message=message,
        co_author=co_author,
        credentials=credentials,
        base_commit=base_commit,
        base_tree=base_tree,
        delivery_key=delivery_key,
        sources=sources,
        limits=limits,
    )
    opened = None
    if pull_request:
        opened = forge.open_or_update_pull_request(
            branch=branch, title=title, body=body, base=base_branch
        )
    return Delivery(push=pushed, pull_request=opened)
