"""Local forges for delivery tests: the API of GitHub (REST v3), Gitea (API v1) or GitLab
(API v4), as far as delivery uses it, with state (pull requests opened and updated), and the
repositories themselves served by real ``git http-backend`` on the same host, as a forge does.

Every request is recorded (``api_requests`` and ``requests`` of the server), and one without
the right token answers 401, so a test sees exactly where the token travelled.
"""

import base64
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from tests.git_server import GitHttpServer, make_bare
from tests.stub_http import Answer, Seen

API_PREFIX = {"github": "", "gitea": "/api/v1", "gitlab": "/api/v4"}
GIT_USER = {"github": "x-access-token", "gitea": "aiflow", "gitlab": "oauth2"}


class Forge:
    """One forge of ``kind`` holding repository ``owner/name`` (a bare repo under ``root``)."""

    def __init__(self, kind: str, root: Path, *, token: str, repository: str = "acme/app"):
        self.kind = kind
        self.token = token
        self.repository = repository
        self.pulls: list[dict[str, Any]] = []
        owner = repository.split("/")[0]
        (root / owner).mkdir(parents=True, exist_ok=True)
        self.bare = make_bare(root / owner, repository.split("/")[1] + ".git")
        self.server = GitHttpServer(root, token=token, user=GIT_USER[kind], api=self.handle)

    @property
    def api_url(self) -> str:
        return self.server.url + API_PREFIX[self.kind]

    @property
    def clone_url(self) -> str:
        return f"{self.server.url}/{self.repository}.git"

    def close(self) -> None:
        self.server.close()

    def __enter__(self) -> "Forge":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the wire ---------------------------------------------------------------------------

    def _authorised(self, seen: Seen) -> bool:
        header = {
            "github": ("authorization", f"Bearer {self.token}"),
            "gitea": ("authorization", f"token {self.token}"),
            "gitlab": ("private-token", self.token),
        }[self.kind]
        return seen.headers.get(header[0]) == header[1]

    def handle(self, seen: Seen) -> Answer:
        if not self._authorised(seen):
            return Answer(401, {"message": "Bad credentials"})
        path = seen.path.removeprefix(API_PREFIX[self.kind])
        if self.kind == "gitlab":
            return self._gitlab(seen, path)
        return self._github_like(seen, path)

    def _pull_json(self, pull: dict[str, Any]) -> dict[str, Any]:
        base_url = self.server.url
        if self.kind == "gitlab":
            return {
                "iid": pull["number"],
                "web_url": f"{base_url}/{self.repository}/-/merge_requests/{pull['number']}",
                "state": "opened",
                "source_branch": pull["head"],
                "target_branch": pull["base"],
                "title": pull["title"],
                "description": pull["body"],
            }
        return {
            "number": pull["number"],
            "html_url": f"{base_url}/{self.repository}/pull/{pull['number']}",
            "state": "open",
            "title": pull["title"],
            "body": pull["body"],
            "head": {"ref": pull["head"], "repo": {"full_name": self.repository}},
            "base": {"ref": pull["base"]},
            "merged_at": None,
        }

    def _open(self, head: str, base: str, title: str, body: str) -> Answer:
        if any(pull["head"] == head for pull in self.pulls):
            return Answer(422, {"message": "A pull request already exists"})
        pull = {"number": len(self.pulls) + 1, "head": head, "base": base, "title": title}
        pull["body"] = body
        self.pulls.append(pull)
        return Answer(201, self._pull_json(pull))

    def _github_like(self, seen: Seen, path: str) -> Answer:
        repo = f"/repos/{self.repository}"
        if path == repo and seen.method == "GET":
            return Answer(200, {"default_branch": "main", "full_name": self.repository})
        if path == f"{repo}/pulls" and seen.method == "GET":
            if self.kind == "github":
                head = seen.query.get("head", [""])[0]
                found = [
                    p for p in self.pulls if f"{self.repository.split('/')[0]}:{p['head']}" == head
                ]
            else:
                page = int(seen.query.get("page", ["1"])[0])
                found = self.pulls if page == 1 else []
            return Answer(200, [self._pull_json(pull) for pull in found])
        if path == f"{repo}/pulls" and seen.method == "POST":
            data = seen.json
            return self._open(data["head"], data["base"], data["title"], data.get("body", ""))
        if path.startswith(f"{repo}/pulls/") and seen.method == "PATCH":
            pull = self.pulls[int(path.rsplit("/", 1)[1]) - 1]
            pull.update({k: v for k, v in seen.json.items() if k in ("title", "body")})
            return Answer(200, self._pull_json(pull))
        return Answer(404, {"message": "Not Found"})

    def _gitlab(self, seen: Seen, path: str) -> Answer:
        project = "/projects/" + self.repository.replace("/", "%2F")
        if unquote(path) == f"/projects/{self.repository}" and path.startswith(project):
            return Answer(200, {"default_branch": "main", "path_with_namespace": self.repository})
        if path == f"{project}/merge_requests" and seen.method == "GET":
            branch = seen.query.get("source_branch", [""])[0]
            found = [p for p in self.pulls if p["head"] == branch]
            return Answer(200, [self._pull_json(pull) for pull in found])
        if path == f"{project}/merge_requests" and seen.method == "POST":
            data = seen.json
            return self._open(
                data["source_branch"], data["target_branch"], data["title"], data["description"]
            )
        if path.startswith(f"{project}/merge_requests/") and seen.method == "PUT":
            pull = self.pulls[int(path.rsplit("/", 1)[1]) - 1]
            data = seen.json
            pull.update({"title": data["title"], "body": data["description"]})
            return Answer(200, self._pull_json(pull))
        return Answer(404, {"message": "404 Not Found"})

    # -- what the tests look at -------------------------------------------------------------

    def everything_sent(self) -> list[tuple[str, str, bytes, dict[str, str]]]:
        """Every request either side received: (method, path + query, body, headers)."""
        api = [
            (s.method, s.path + "?" + str(s.query), s.body, s.headers)
            for s in self.server.api_requests
        ]
        git = [(r.method, r.path + "?" + r.query, b"", r.headers) for r in self.server.requests]
        return api + git

    def git_basic_password(self) -> set[str]:
        """The passwords git sent in Basic authorisation headers."""
        found = set()
        for request in self.server.requests:
            header = request.headers.get("authorization", "")
            if header.startswith("Basic "):
                found.add(base64.b64decode(header[6:]).decode().split(":", 1)[1])
        return found
