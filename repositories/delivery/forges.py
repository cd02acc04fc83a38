"""One adapter per forge behind one interface: find, open or update a pull request.

GitHub speaks REST v3, Gitea and Forgejo API v1, GitLab API v4 (merge requests). Every call
goes through ``common.outbound`` under the repository policy, with the token in its header
only (``Authorization: Bearer`` for GitHub, ``Authorization: token`` for Gitea,
``PRIVATE-TOKEN`` for GitLab), never in a URL or a body. A pull request is found by its head
branch, so delivering again updates the one already open instead of opening a second.
"""

from __future__ import annotations

import base64
import logging
from dataclasses import dataclass
from typing import Any, ClassVar
from urllib.parse import quote, urlencode

import orjson

from common.outbound import OutboundPolicy, repository_policy, request
from common.secrets import Secret

from ..errors import DeliveryFailed
from ..forge_urls import token_origins

logger = logging.getLogger(__name__)

MAX_PAGES = 20


@dataclass(frozen=True)
class PullRequest:
    """A pull (or merge) request on the forge, as the forge describes it."""

    number: int
    url: str  # the page people open
    state: str  # open, closed, merged (as the forge says it)
    head: str
    base: str
    created: bool  # True when this call opened it


class Forge:
    """The interface every forge adapter gives; ``forge_for`` builds the right one."""

    kind: ClassVar[str]
    git_user: ClassVar[str]

    def __init__(
        self,
        *,
        api_url: str,
        repository: str,
        token: Secret,
        policy: OutboundPolicy | None = None,
    ):
        self.api_url = api_url.rstrip("/")
        self.repository = repository
        self.token = token
        self.policy = policy or repository_policy()

    # -- what each forge says differently ---------------------------------------------------

    def auth_headers(self) -> dict[str, str]:
        raise NotImplementedError

    def default_branch(self) -> str:
        raise NotImplementedError

    def find_pull_request(self, *, branch: str) -> PullRequest | None:
        """The open pull request whose head is ``branch`` in this repository, if any."""
        raise NotImplementedError

    def _create(self, *, branch: str, base: str, title: str, body: str) -> PullRequest:
        raise NotImplementedError

    def _update(self, found: PullRequest, *, title: str, body: str) -> PullRequest:
        raise NotImplementedError

    # -- shared -----------------------------------------------------------------------------

    def git_http_header(self) -> Secret:
        """The header git sends to this forge's remote (HTTP Basic with the token)."""
        raw = f"{self.git_user}:{self.token.reveal()}".encode()
        return Secret("Authorization: Basic " + base64.b64encode(raw).decode())

    def token_origins(self) -> frozenset[tuple[str, int]]:
        return token_origins(self.kind, self.api_url, self.repository)

    def open_or_update_pull_request(
        self, *, branch: str, title: str, body: str, base: str | None = None
    ) -> PullRequest:
        """Open a pull request from ``branch`` into ``base`` (default: the repository's
        default branch), or update the title and body of the one already open from it."""
        found = self.find_pull_request(branch=branch)
        if found is not None:
            return self._update(found, title=title, body=body)
        target = base or self.default_branch()
        try:
            return self._create(branch=branch, base=target, title=title, body=body)
        except DeliveryFailed:
            # Another delivery may have opened it meanwhile: then that one is updated.
            found = self.find_pull_request(branch=branch)
            if found is None:
                raise
            return self._update(found, title=title, body=body)

    def call(
        self, method: str, path: str, *, json: Any = None, query: dict[str, Any] | None = None
    ) -> Any:
        """One API call; its JSON, or ``DeliveryFailed`` with the forge's reason."""
        url = f"{self.api_url}{path}"
        if query:
            url += "?" + urlencode(query)
        headers = {"Accept": "application/json", "User-Agent": "aiflow", **self.auth_headers()}
        response = request(method, url, policy=self.policy, headers=headers, json=json)
        if response.status >= 400:
            raise DeliveryFailed(
                self._reason(response.status, response.content), code=self._code(response.status)
            )
        return response.json() if response.content else None

    @staticmethod
    def _code(status: int) -> str:
        if status >= 500:
            return "forge_unavailable"  # the forge's own trouble: worth trying again later
        return {401: "forge_auth", 403: "forge_auth", 404: "forge_not_found"}.get(
            status, "delivery_failed"
        )

    def _reason(self, status: int, content: bytes) -> str:
        if status in (401, 403):
            return f"The forge refused the token (HTTP {status})."
        if status == 404:
            return f"The forge has no repository {self.repository}, or the token cannot see it."
        message = ""
        try:
            payload = orjson.loads(content)
            if isinstance(payload, dict):
                message = str(payload.get("message") or payload.get("error") or "")
        except orjson.JSONDecodeError:
            pass
        return f"The forge answered HTTP {status}" + (f": {message[:300]}" if message else ".")


class GitHub(Forge):
    """GitHub (and GitHub Enterprise: ``api_url`` ``https://host/api/v3``), REST v3."""

    kind = "github"
    git_user = "x-access-token"

    def auth_headers(self) -> dict[str, str]:
        return {
            "Authorization": f"Bearer {self.token.reveal()}",
            "Accept": "application/vnd.github+json",
            "X-GitHub-Api-Version": "2022-11-28",
        }

    def _repo(self) -> str:
        return f"/repos/{self.repository}"

    def default_branch(self) -> str:
        return str(self.call("GET", self._repo())["default_branch"])

    def find_pull_request(self, *, branch: str) -> PullRequest | None:
        owner = self.repository.split("/")[0]
        found = self.call(
            "GET", f"{self._repo()}/pulls", query={"head": f"{owner}:{branch}", "state": "open"}
        )
        for item in found or []:
            if item.get("head", {}).get("ref") == branch:
                return self._pull(item, created=False)
        return None

    def _create(self, *, branch: str, base: str, title: str, body: str) -> PullRequest:
        item = self.call(
            "POST",
            f"{self._repo()}/pulls",
            json={"title": title, "head": branch, "base": base, "body": body},
        )
        return self._pull(item, created=True)

    def _update(self, found: PullRequest, *, title: str, body: str) -> PullRequest:
        item = self.call(
            "PATCH", f"{self._repo()}/pulls/{found.number}", json={"title": title, "body": body}
        )
        return self._pull(item, created=False)

    @staticmethod
    def _pull(item: dict, *, created: bool) -> PullRequest:
        state = "merged" if item.get("merged_at") else str(item.get("state", "open"))
        return PullRequest(
            number=int(item["number"]),
            url=str(item["html_url"]),
            state=state,
            head=str(item.get("head", {}).get("ref", "")),
            base=str(item.get("base", {}).get("ref", "")),
            created=created,
        )


class Gitea(GitHub):
    """Gitea and Forgejo, API v1 (``api_url`` ``https://host/api/v1``)."""

    kind = "gitea"
    git_user = "aiflow"  # Gitea takes a token as the password of any user name

    def auth_headers(self) -> dict[str, str]:
        return {"Authorization": f"token {self.token.reveal()}"}

    def find_pull_request(self, *, branch: str) -> PullRequest | None:
        for page in range(1, MAX_PAGES + 1):
            items = self.call(
                "GET",
                f"{self._repo()}/pulls",
                query={"state": "open", "page": page, "limit": 50},
            )
            for item in items or []:
                head = item.get("head") or {}
                same_repo = (head.get("repo") or {}).get("full_name", self.repository)
                if head.get("ref") == branch and same_repo.lower() == self.repository.lower():
                    return self._pull(item, created=False)
            if not items or len(items) < 50:
                return None
        return None


class GitLab(Forge):
    """GitLab, API v4 (``api_url`` ``https://host/api/v4``): merge requests."""

    kind = "gitlab"
    git_user = "oauth2"

    def auth_headers(self) -> dict[str, str]:
        return {"PRIVATE-TOKEN": self.token.reveal()}

    def _project(self) -> str:
        return f"/projects/{quote(self.repository, safe='')}"

    def default_branch(self) -> str:
        return str(self.call("GET", self._project())["default_branch"])

    def find_pull_request(self, *, branch: str) -> PullRequest | None:
        items = self.call(
            "GET",
            f"{self._project()}/merge_requests",
            query={"state": "opened", "source_branch": branch},
        )
        for item in items or []:
            if item.get("source_branch") == branch:
                return self._pull(item, created=False)
        return None

    def _create(self, *, branch: str, base: str, title: str, body: str) -> PullRequest:
        item = self.call(
            "POST",
            f"{self._project()}/merge_requests",
            json={
                "source_branch": branch,
                "target_branch": base,
                "title": title,
                "description": body,
            },
        )
        return self._pull(item, created=True)

    def _update(self, found: PullRequest, *, title: str, body: str) -> PullRequest:
        item = self.call(
            "PUT",
            f"{self._project()}/merge_requests/{found.number}",
            json={"title": title, "description": body},
        )
        return self._pull(item, created=False)

    @staticmethod
    def _pull(item: dict, *, created: bool) -> PullRequest:
        return PullRequest(
            number=int(item["iid"]),
            url=str(item["web_url"]),
            state=str(item.get("state", "opened")),
            head=str(item.get("source_branch", "")),
            base=str(item.get("target_branch", "")),
            created=created,
        )


FORGES: dict[str, type[Forge]] = {"github": GitHub, "gitea": Gitea, "gitlab": GitLab}


def forge_for(
    kind: str,
    *,
    api_url: str,
    repository: str,
    token: Secret,
    policy: OutboundPolicy | None = None,
) -> Forge:
    """The adapter for ``kind`` (github, gitea, gitlab)."""
    try:
        adapter = FORGES[kind]
    except KeyError as exc:
        raise DeliveryFailed(f"No forge of kind {kind!r}.", code="forge_unknown") from exc
    return adapter(api_url=api_url, repository=repository, token=token, policy=policy)
