"""inventory: a small stock keeper."""
