"""CSV text in, rows and plain-text tables out."""

import csv
import io


def parse_csv(text: str) -> list[dict[str, str]]:
    """The rows of a CSV text with a header line."""
    return list(csv.DictReader(io.StringIO(text)))


def render(rows: list[dict[str, str]]) -> str:
    """One line per row, values separated by ' | '."""
    return "\n".join(" | ".join(row.values()) for row in rows)
