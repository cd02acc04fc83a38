"""Local stub HTTP servers speaking the LLM vendors' wire protocols.

Each server records what it received and answers from a script (a queue of responses),
falling back to a default responder once the script is used up.
"""

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit


@dataclass
class Received:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body or b"null")


@dataclass
class Reply:
    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)


Responder = Callable[[Received], Reply]


class _Server(ThreadingHTTPServer):
    # Many calls at once (tests of concurrent runs) must queue, not be refused.
    request_queue_size = 128


class StubServer:
    """A threaded HTTP server on 127.0.0.1 with a random port."""

    def __init__(self, default: Responder):
        self.default = default
        self.requests: list[Received] = []
        self.script: list[Reply] = []
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:  # keep test output quiet
                pass

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                parts = urlsplit(self.path)
                received = Received(
                    method=self.command,
                    path=parts.path,
                    query=parse_qs(parts.query),
                    headers={k.lower(): v for k, v in self.headers.items()},
                    body=body,
                )
                reply = server._next(received)
                payload = (
                    reply.body if isinstance(reply.body, bytes) else json.dumps(reply.body).encode()
                )
                self.send_response(reply.status)
                headers = {"Content-Type": "application/json", **reply.headers}
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_POST = _handle
            do_GET = _handle

        self.httpd = _Server(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def _next(self, received: Received) -> Reply:
        with self._lock:
            self.requests.append(received)
            if self.script:
                return self.script.pop(0)
        return self.default(received)

    def calls_to(self, suffix: str) -> list[Received]:
        return [r for r in self.requests if r.path.endswith(suffix)]

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


# --- Vendor answers -------------------------------------------------------------------------


def openai_reply(content: str, *, prompt_tokens: int = 12, completion_tokens: int = 5) -> Reply:
    return Reply(
        body={
            "id": "chatcmpl-stub",
            "object": "chat.completion",
            "created": 1700000000,
            "model": "stub-model",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": content},
                    "finish_reason": "stop",
                }
            ],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
            },
        }
    )


def openai_error(status: int, headers: dict[str, str] | None = None) -> Reply:
    return Reply(
        status=status,
        body={"error": {"message": f"stub error {status}", "type": "stub", "code": None}},
        headers=headers or {},
    )


def anthropic_reply(
    *, text: str | None = None, tool: tuple[str, dict] | None = None, tokens=(20, 9)
) -> Reply:
    content: list[dict[str, Any]] = []
    if text is not None:
        content.append({"type": "text", "text": text})
    if tool is not None:
        content.append({"type": "tool_use", "id": "toolu_stub", "name": tool[0], "input": tool[1]})
    return Reply(
        body={
            "id": "msg_stub",
            "type": "message",
            "role": "assistant",
            "model": "claude-stub",
            "content": content,
            "stop_reason": "tool_use" if tool else "end_turn",
            "stop_sequence": None,
            "usage": {"input_tokens": tokens[0], "output_tokens": tokens[1]},
        }
    )


def bedrock_reply(text: str, *, tokens=(30, 11)) -> Reply:
    return Reply(
        body={
            "output": {"message": {"role": "assistant", "content": [{"text": text}]}},
            "stopReason": "end_turn",
            "usage": {
                "inputTokens": tokens[0],
                "outputTokens": tokens[1],
                "totalTokens": tokens[0] + tokens[1],
            },
            "metrics": {"latencyMs": 12},
        }
    )


def vertex_reply(text: str, *, tokens=(17, 6)) -> Reply:
    return Reply(
        body={
            "candidates": [
                {
                    "content": {"role": "model", "parts": [{"text": text}]},
                    "finishReason": "STOP",
                    "index": 0,
                }
            ],
            "usageMetadata": {
                "promptTokenCount": tokens[0],
                "candidatesTokenCount": tokens[1],
                "totalTokenCount": tokens[0] + tokens[1],
            },
            "modelVersion": "gemini-2.5-flash",
        }
    )


def google_token_reply() -> Reply:
    return Reply(
        body={"access_token": "stub-access-token", "expires_in": 3600, "token_type": "Bearer"}
    )
