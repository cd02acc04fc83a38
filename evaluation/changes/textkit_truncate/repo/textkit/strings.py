"""String helpers."""

import re


def slugify(text: str) -> str:
    """Lower-case words of text joined by hyphens."""
    words = re.findall(r"[a-z0-9]+", text.lower())
    return "-".join(words)


def word_count(text: str) -> int:
    """How many whitespace-separated words text has."""
    return len(text.split())
