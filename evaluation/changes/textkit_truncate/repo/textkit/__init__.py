"""textkit: string helpers."""
