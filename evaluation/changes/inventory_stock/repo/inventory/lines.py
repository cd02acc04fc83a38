"""Reading stock lines like "apples: 3"."""


def parse_line(line: str) -> tuple[str, int]:
    """The item and count of one "name: count" line."""
    name, _, count = line.partition(":")
    return name.strip(), int(count.strip())
