"""What a file's bytes are: the one test, shared by stored artifacts and imported trees."""

from __future__ import annotations

# How far into a file a NUL byte marks it as binary (git's own heuristic looks this far).
BINARY_SNIFF_BYTES = 8000


def is_binary(data: bytes) -> bool:
    """True for content a model must never be shown (a NUL in the first bytes, or not UTF-8)."""
    if b"\0" in data[:BINARY_SNIFF_BYTES]:
        return True
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return True
    return False
