"""A local OAuth 2.0 provider speaking the Google and GitHub protocols, for the OAuth tests.

Authorization endpoint (302 back with code and state; remembers the PKCE challenge), token
endpoint (checks client credentials, redirect URI and the PKCE verifier), user info (Google:
``/userinfo``; GitHub: ``/api/user`` and ``/api/user/emails``).
"""

import base64
import hashlib
import json
import secrets
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

CLIENT_ID = "stub-client-id"
CLIENT_SECRET = "stub-client-secret"


class OAuthStub:
    """The provider's state; ``userinfo`` / ``github_user`` + ``emails`` say who signs in."""

    def __init__(self) -> None:
        self.codes: dict[str, dict[str, str]] = {}
        self.tokens: set[str] = set()
        self.token_requests: list[dict[str, str]] = []
        self.authorize_requests: list[dict[str, str]] = []
        self.userinfo: dict[str, Any] = {}  # Google
        self.github_user: dict[str, Any] = {}  # GitHub
        self.emails: list[dict[str, Any]] = []  # GitHub
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def base(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    def identity(self, email: str, *, verified: bool = True) -> None:
        """Whoever signs in next, at Google or at GitHub, is ``email``."""
        self.userinfo = {
            "sub": f"google-{email}",
            "email": email,
            "email_verified": verified,
            "name": "Grace Hopper",
            "given_name": "Grace",
            "family_name": "Hopper",
        }
        self.github_user = {"id": len(email) * 7919, "login": email.split("@")[0], "email": None}
        self.emails = [
            {"email": "old@example.org", "primary": False, "verified": True},
            {"email": email, "primary": True, "verified": verified},
        ]

    def start(self) -> "OAuthStub":
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                return None

            def _json(self, status: int, body: Any) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _bearer(self) -> str:
                header = self.headers.get("Authorization", "")
                return header.split(" ", 1)[1] if " " in header else ""

            def do_GET(self) -> None:  # noqa: N802
                url = urlsplit(self.path)
                query = {k: v[0] for k, v in parse_qs(url.query).items()}
                if url.path == "/authorize":
                    stub.authorize_requests.append(query)
                    if query.get("client_id") != CLIENT_ID:
                        return self._json(400, {"error": "invalid_client"})
                    code = secrets.token_urlsafe(16)
                    stub.codes[code] = query
                    target = query["redirect_uri"]
                    back = urlencode({"code": code, "state": query.get("state", "")})
                    self.send_response(302)
                    self.send_header("Location", f"{target}?{back}")
                    self.end_headers()
                    return None
                if self._bearer() not in stub.tokens:
                    return self._json(401, {"error": "invalid_token"})
                if url.path == "/userinfo":
                    return self._json(200, stub.userinfo)
                if url.path == "/api/user":
                    return self._json(200, stub.github_user)
                if url.path == "/api/user/emails":
                    return self._json(200, stub.emails)
                return self._json(404, {"error": "not_found"})

            def do_POST(self) -> None:  # noqa: N802
                length = int(self.headers.get("Content-Length", "0"))
                form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
                if urlsplit(self.path).path != "/token":
                    return self._json(404, {"error": "not_found"})
                stub.token_requests.append(form)
                grant = stub.codes.pop(form.get("code", ""), None)
                if grant is None:
                    return self._json(400, {"error": "invalid_grant"})
                if (form.get("client_id"), form.get("client_secret")) != (CLIENT_ID, CLIENT_SECRET):
                    return self._json(401, {"error": "invalid_client"})
                if form.get("redirect_uri") != grant["redirect_uri"]:
                    return self._json(400, {"error": "invalid_grant"})
                verifier = form.get("code_verifier", "")
                digest = hashlib.sha256(verifier.encode()).digest()
                challenge = base64.urlsafe_b64encode(digest).decode().rstrip("=")
                if grant.get("code_challenge_method") != "S256" or (
                    challenge != grant.get("code_challenge")
                ):
                    return self._json(400, {"error": "invalid_grant", "reason": "pkce"})
                token = secrets.token_urlsafe(16)
                stub.tokens.add(token)
                return self._json(
                    200, {"access_token": token, "token_type": "bearer", "expires_in": 3600}
                )

        return Handler
