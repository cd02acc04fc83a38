"""Real git for tests: bare repositories served over smart HTTP by Debian's ``git
http-backend`` (a CGI program) behind a small local server, and helpers to make repositories.

The server records every request's path and headers (so a test can see where a token went),
and, when given a token, answers 401 to any request without ``Authorization: Basic`` carrying
it, as a forge does.
"""

import base64
import json
import os
import re
import subprocess
import threading
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.stub_http import Answer, Seen

HTTP_BACKEND = "/usr/lib/git-core/git-http-backend"
GIT_PATHS = re.compile(r"\.git/(info/refs|git-upload-pack|git-receive-pack|HEAD|objects/)")
# What git may read while tests make repositories: nothing of the machine's own config.
GIT_ENV = {
    "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
    "HOME": "/nonexistent",
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_CONFIG_GLOBAL": "/dev/null",
    "GIT_AUTHOR_NAME": "Fixture Author",
    "GIT_AUTHOR_EMAIL": "fixture@example.org",
    "GIT_COMMITTER_NAME": "Fixture Author",
    "GIT_COMMITTER_EMAIL": "fixture@example.org",
    "GIT_AUTHOR_DATE": "2024-01-01T00:00:00Z",
    "GIT_COMMITTER_DATE": "2024-01-01T00:00:00Z",
    "LANG": "C",
}


def git(*args: str, cwd: Path | str | None = None, input: bytes | None = None) -> str:
    """Run git with a clean environment; its stdout (stripped). Fails the test on error."""
    result = subprocess.run(
        ["git", *args], cwd=cwd, env=GIT_ENV, input=input, capture_output=True, check=False
    )
    if result.returncode != 0:
        raise AssertionError(f"git {' '.join(args)}: {result.stderr.decode(errors='replace')}")
    return result.stdout.decode().strip()


def make_repository(
    path: Path, files: dict[str, bytes | str], *, branch: str = "main", message: str = "initial"
) -> str:
    """A work tree at ``path`` with ``files`` committed on ``branch``; the commit's sha."""
    path.mkdir(parents=True, exist_ok=True)
    git("init", "-q", "-b", branch, str(path))
    for name, content in files.items():
        target = path / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content.encode() if isinstance(content, str) else content)
    git("add", "-A", cwd=path)
    git("commit", "-q", "-m", message, cwd=path)
    return git("rev-parse", "HEAD", cwd=path)


def make_bare(root: Path, name: str, source: Path | None = None) -> Path:
    """A bare repository ``root/name`` (a mirror of ``source`` when given), pushable."""
    bare = root / name
    if source is not None:
        git("clone", "-q", "--bare", str(source), str(bare))
    else:
        git("init", "-q", "--bare", "-b", "main", str(bare))
    git("config", "http.receivepack", "true", cwd=bare)
    return bare


@dataclass
class GitRequest:
    method: str
    path: str
    query: str
    headers: dict[str, str]


class GitHttpServer:
    """``git http-backend`` for every bare repository under ``root``, on 127.0.0.1."""

    def __init__(
        self,
        root: Path,
        *,
        token: str | None = None,
        user: str = "x-access-token",
        api: Callable[[Seen], Answer] | None = None,
        on_git: Callable[["GitRequest"], None] | None = None,
    ):
        self.root = root
        self.token = token
        self.user = user
        self.api = api
        self.on_git = on_git
        self.requests: list[GitRequest] = []
        self.api_requests: list[Seen] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _body(self) -> bytes:
                if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                    chunks: list[bytes] = []
                    while True:
                        size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                        if size == 0:
                            self.rfile.readline()
                            return b"".join(chunks)
                        chunks.append(self.rfile.read(size))
                        self.rfile.readline()
                length = int(self.headers.get("Content-Length") or 0)
                return self.rfile.read(length) if length else b""

            def _reply(self, status: int, headers: dict[str, str], body: bytes) -> None:
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _handle(self) -> None:
                body = self._body()
                parts = urlsplit(self.path)
                headers = {k.lower(): v for k, v in self.headers.items()}
                if server.api is not None and not GIT_PATHS.search(parts.path):
                    seen = Seen(self.command, parts.path, parse_qs(parts.query), headers, body)
                    server.api_requests.append(seen)
                    answer = server.api(seen)
                    payload = (
                        answer.body
                        if isinstance(answer.body, bytes)
                        else json.dumps(answer.body).encode()
                    )
                    reply = {"Content-Type": "application/json", **answer.headers}
                    self._reply(answer.status, reply, payload)
                    return
                seen_git = GitRequest(self.command, parts.path, parts.query, headers)
                server.requests.append(seen_git)
                if server.on_git is not None:
                    server.on_git(seen_git)
                if server.token is not None and headers.get("authorization") != server.expected:
                    self._reply(401, {"WWW-Authenticate": 'Basic realm="git"'}, b"no\n")
                    return
                env = {
                    "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
                    "GIT_PROJECT_ROOT": str(server.root),
                    "GIT_HTTP_EXPORT_ALL": "1",
                    "GIT_CONFIG_NOSYSTEM": "1",
                    "HOME": "/nonexistent",
                    "REQUEST_METHOD": self.command,
                    "PATH_INFO": parts.path,
                    "QUERY_STRING": parts.query,
                    "CONTENT_TYPE": headers.get("content-type", ""),
                    "CONTENT_LENGTH": str(len(body)),
                    "REMOTE_USER": server.user,
                    "REMOTE_ADDR": "127.0.0.1",
                    "GIT_PROTOCOL": headers.get("git-protocol", ""),
                    "HTTP_CONTENT_ENCODING": headers.get("content-encoding", ""),
                }
                result = subprocess.run(
                    [HTTP_BACKEND], input=body, env=env, capture_output=True, check=False
                )
                head, _, payload = result.stdout.partition(b"\r\n\r\n")
                status = 200
                reply_headers: dict[str, str] = {}
                for line in head.decode("latin-1").split("\r\n"):
                    name, _, value = line.partition(":")
                    if name.lower() == "status":
                        status = int(value.strip().split()[0])
                    elif name:
                        reply_headers[name] = value.strip()
                self._reply(status, reply_headers, payload)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _handle

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    @property
    def expected(self) -> str:
        raw = f"{self.user}:{self.token}".encode()
        return "Basic " + base64.b64encode(raw).decode()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def __enter__(self) -> "GitHttpServer":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
