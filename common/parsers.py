"""A form parser that takes JSON bodies sent without a JSON Content-Type.

The seed README's curl examples send ``-d '{...}'`` with no Content-Type header, which
curl labels ``application/x-www-form-urlencoded``. Such a body that starts like JSON is
parsed as JSON; any other body is parsed as an ordinary form.
"""

import io
import json
from typing import Any

from rest_framework.exceptions import ParseError
from rest_framework.parsers import FormParser


class JSONTolerantFormParser(FormParser):
    """``application/x-www-form-urlencoded`` that understands a JSON object or array body."""

    def parse(self, stream: Any, media_type: str | None = None, parser_context: Any = None) -> Any:
        raw = stream.read() if stream is not None else b""
        if raw.lstrip()[:1] in (b"{", b"["):
            encoding = (parser_context or {}).get("encoding", "utf-8")
            try:
                return json.loads(raw.decode(encoding))
            except (ValueError, UnicodeDecodeError) as exc:
                raise ParseError(f"JSON parse error - {exc}") from exc
        return super().parse(io.BytesIO(raw), media_type, parser_context)
