"""Items in stock."""


class Inventory:
    """Counts of items by name."""

    def __init__(self) -> None:
        self.items: dict[str, int] = {}

    def add(self, name: str, count: int = 1) -> None:
        """Put count more of name in stock."""
        self.items[name] = self.items.get(name, 0) + count

    def remove(self, name: str, count: int = 1) -> None:
        """Take count of name out of stock."""
        self.items[name] = self.items.get(name, 0) - count

    def count(self, name: str) -> int:
        """How many of name are in stock."""
        return self.items.get(name, 0)
